#!/usr/bin/env node
// Usage: node validate-spec.mjs PATH
//
// Checks the OpenAPI document at PATH against the official OpenAPI schema of its version
// (@seriousme/openapi-schema-validator), then what that schema cannot check: every local
// "$ref" ("#/...") points at something in the document, and operationIds are unique.
// Prints each problem and exits 1 when there is any, 2 on a usage or read error, else 0.

import { readFile } from "node:fs/promises";
import { Validator } from "@seriousme/openapi-schema-validator";

// The value the JSON pointer `pointer` ("/components/schemas/Branch") names in `doc`, or
// undefined.
function resolvePointer(doc, pointer) {
  if (pointer === "") return doc;
  let node = doc;
  for (const raw of pointer.slice(1).split("/")) {
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

// Problems with the local $refs of `doc`: one string per ref that resolves to nothing.
function danglingRefs(doc) {
  const problems = [];
  const walk = (node, where) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${where}/${i}`));
      return;
    }
    if (node === null || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string" && value.startsWith("#")) {
        if (resolvePointer(doc, value.slice(1)) === undefined) {
          problems.push(`${where}: $ref ${value} points at nothing`);
        }
      } else {
        walk(value, `${where}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`);
      }
    }
  };
  walk(doc, "#");
  return problems;
}

// Problems with operationIds: one string per id used more than once.
function duplicateOperationIds(doc) {
  const seen = new Map();
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item ?? {})) {
      if (op && typeof op === "object" && typeof op.operationId === "string") {
        const where = `${method.toUpperCase()} ${path}`;
        seen.set(op.operationId, [...(seen.get(op.operationId) ?? []), where]);
      }
    }
  }
  return [...seen.entries()]
    .filter(([, uses]) => uses.length > 1)
    .map(([id, uses]) => `operationId ${id} is used by ${uses.join(", ")}`);
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error("usage: node validate-spec.mjs PATH");
    return 2;
  }
  const path = argv[0];
  let doc;
  try {
    doc = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    console.error(`${path}: ${err.message}`);
    return 2;
  }
  const validator = new Validator();
  const result = await validator.validate(doc);
  const problems = [];
  if (!result.valid) {
    for (const e of [].concat(result.errors ?? [])) {
      problems.push(
        typeof e === "object" && e !== null
          ? `${e.instancePath || "/"}: ${e.message ?? ""} ${JSON.stringify(e.params ?? {})} (${e.schemaPath ?? ""})`
          : String(e),
      );
    }
  }
  problems.push(...danglingRefs(doc), ...duplicateOperationIds(doc));
  if (problems.length > 0) {
    console.error(`${path}: invalid`);
    for (const p of problems) console.error(`  ${p}`);
    return 1;
  }
  const operations = Object.values(doc.paths ?? {}).reduce(
    (n, item) => n + Object.values(item).filter((op) => op?.operationId).length,
    0,
  );
  console.log(`${path}: valid OpenAPI ${validator.version} (${operations} operations)`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
