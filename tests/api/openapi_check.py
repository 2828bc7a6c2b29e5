#!/usr/bin/env python3
"""Checks recorded REST responses against an OpenAPI 3.1 document (api/openapi.json).

As a module: load() the document, match() a concrete request path to its path template and
validate_response() a status and JSON body against what the document says the route returns.

As a program:

    python3 tests/api/openapi_check.py SPEC RECORDS.jsonl

where each non-blank line of RECORDS.jsonl is {"method", "path", "status", "body"} (body: the
parsed JSON response, or null when there was none). Prints every failure and exits 1 if there
was one (or if the document's own schemas are not valid JSON Schema), else 0; also lists the
(METHOD, template) routes of the document no record exercised, which does not change the exit
code. Exits 2 when SPEC or RECORDS cannot be read.

Needs only the standard library and jsonschema (Debian's python3-jsonschema 4.10 or later).
"""

import argparse
import json
import re
import sys
import urllib.parse
import warnings

import jsonschema
from jsonschema.exceptions import best_match

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_PARAM = re.compile(r"\{[^{}/]+\}")
_MAX_MESSAGE = 300


def load(path):
    """Reads the OpenAPI document at `path` and returns it as a dict.

    Raises OSError when the file cannot be read, json.JSONDecodeError (a ValueError) when it is
    not JSON, and ValueError when it is not an object with a "paths" object.
    """
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        raise ValueError(f"{path}: not an OpenAPI document (no \"paths\" object)")
    return spec


def route_templates(spec):
    """Returns the routes of `spec` as a set of (METHOD, template) pairs.

    METHOD is upper case ("GET"); template is the path as the document spells it
    ("/api/v1/projects/{p}/branches/{b}").
    """
    routes = set()
    for template, item in spec.get("paths", {}).items():
        for method in HTTP_METHODS:
            if isinstance(item, dict) and method in item:
                routes.add((method.upper(), template))
    return routes


def _request_path(concrete_path):
    """The path of `concrete_path` without query or fragment (and scheme and host, if any)."""
    return urllib.parse.urlsplit(concrete_path).path


def _segment_pattern(segment):
    """A regex for one template segment: each {x} matches one or more characters but '/'."""
    parts = []
    last = 0
    for m in _PARAM.finditer(segment):
        parts.append(re.escape(segment[last:m.start()]))
        parts.append("[^/]+")
        last = m.end()
    parts.append(re.escape(segment[last:]))
    return re.compile("".join(parts) + r"\Z")


def _template_rank(template, segments):
    """The rank of `template` for the path `segments`, or None if it does not match.

    Ranks compare as tuples, lower is better: a literal segment (0) beats a templated one (1),
    from the left.
    """
    t_segments = template.split("/")
    if len(t_segments) != len(segments):
        return None
    rank = []
    for t, s in zip(t_segments, segments):
        if not _PARAM.search(t):
            if t != s:
                return None
            rank.append(0)
        elif _segment_pattern(t).match(s):
            rank.append(1)
        else:
            return None
    return tuple(rank)


def match(spec, method, concrete_path):
    """Returns the path template of `spec` that a request for `concrete_path` reaches, or None.

    `concrete_path` is as sent ("/api/v1/projects/demo/branches/dev/reset?wait=true"); its query
    and fragment are ignored. Each {x} of a template matches one non-empty segment. Among the
    templates that match, those defining `method` (any case) come first, as a router matches
    the method too; then literal segments beat templated ones from the left, so
    POST /api/v1/snapshots/cleanup is "/api/v1/snapshots/cleanup", not "/api/v1/snapshots/{id}".
    When no matching template defines `method`, the best matching template is returned all the
    same (validate_response then reports the method as undocumented).
    """
    segments = _request_path(concrete_path).split("/")
    wanted = method.lower()
    best = None
    for template, item in spec.get("paths", {}).items():
        rank = _template_rank(template, segments)
        if rank is None:
            continue
        has_method = isinstance(item, dict) and wanted in item
        key = (not has_method, rank, template)
        if best is None or key < best[0]:
            best = (key, template)
    return best[1] if best else None


def _resolve_local(spec, node):
    """Follows `node`'s "$ref" ("#/components/responses/X") within `spec`, repeatedly."""
    seen = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        pointer = node["$ref"]
        if not pointer.startswith("#") or pointer in seen:
            raise ValueError(f"cannot resolve $ref {pointer}")
        seen.add(pointer)
        target = spec
        for raw in pointer[1:].split("/")[1:]:
            key = urllib.parse.unquote(raw).replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or key not in target:
                raise ValueError(f"$ref {pointer} points at nothing")
            target = target[key]
        node = target
    return node


def _response_for(responses, status):
    """The response object of `responses` for `status`: exact, then "4XX" style, then default."""
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in responses:
            return responses[key]
    return None


def _json_schema_of(content):
    """(True, schema) if `content` documents a JSON media type, else (False, None)."""
    for media_type, media in (content or {}).items():
        essence = media_type.split(";")[0].strip().lower()
        if essence == "application/json" or essence.endswith("+json"):
            return True, (media or {}).get("schema", {})
    return False, None


def _json_path(error):
    """Where in the body `error` is, as "$.branches[0].uri"."""
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _closest_alternative(error):
    """For an anyOf/oneOf `error`: the errors of the alternative the body came closest to.

    Alternatives of another type than the body's are passed over; among the rest, the one with
    the fewest errors wins, then the one whose errors lie deepest in the body.
    """
    by_alternative = {}
    for e in error.context:
        by_alternative.setdefault(e.relative_schema_path[0], []).append(e)
    candidates = [errors for errors in by_alternative.values()
                  if not any(e.validator == "type" and not e.relative_path for e in errors)]
    if not candidates:
        return [best_match(error.context)]
    return min(candidates,
               key=lambda errors: (len(errors), -max(len(e.absolute_path) for e in errors)))


def _describe(error):
    """`error`'s message, shortened, with the closest alternative's cause for anyOf/oneOf."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        closest = _closest_alternative(error)
        more = f" (and {len(closest) - 1} more)" if len(closest) > 1 else ""
        message = (f"matches none of the {len(error.validator_value)} alternatives of "
                   f"{error.validator}; closest: {_json_path(closest[0])}: "
                   f"{closest[0].message}{more}")
    else:
        message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return message


def _validator(spec, schema):
    """A Draft 2020-12 validator for `schema` whose local $refs resolve within `spec`."""
    # RefResolver is what python3-jsonschema 4.10 has; later versions deprecate it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = jsonschema.RefResolver.from_schema(spec)
        return jsonschema.Draft202012Validator(schema, resolver=resolver)


def validate_response(spec, method, concrete_path, status, body):
    """Checks one response against `spec`; returns a list of error strings (empty: valid).

    `method` is the HTTP method (any case), `concrete_path` the request path as sent (query
    ignored), `status` the HTTP status (int), `body` the parsed JSON body or None when the
    response had none.

    Errors: no template matches the path; the template lacks the method; neither the status
    nor a "4XX"-style range nor "default" is among the route's responses; the response
    documents a JSON body and `body` is None; it documents no body at all and `body` is not
    None; `body` fails the documented application/json schema (Draft 2020-12, $refs resolved
    within `spec`), one string per failure, "$.where: what". A response documenting only
    non-JSON content (text/event-stream) accepts any body unchecked.
    """
    where = f"{method.upper()} {concrete_path} -> {status}"
    template = match(spec, method, concrete_path)
    if template is None:
        return [f"{where}: no path of the spec matches"]
    operation = spec["paths"][template].get(method.lower())
    if not isinstance(operation, dict):
        return [f"{where}: {method.upper()} is not documented for {template}"]
    try:
        status = int(status)
    except (TypeError, ValueError):
        return [f"{where}: status {status!r} is not an integer"]
    try:
        response = _resolve_local(spec, _response_for(operation.get("responses", {}), status))
    except ValueError as e:
        return [f"{where}: {e}"]
    if response is None:
        return [f"{where}: status {status} is not documented for {method.upper()} {template}"]
    content = response.get("content") or {}
    has_json, schema = _json_schema_of(content)
    if not has_json:
        if body is not None and not content:
            return [f"{where}: a body came but {method.upper()} {template} documents none "
                    f"for {status}"]
        return []
    if body is None:
        return [f"{where}: no body came but {method.upper()} {template} documents a JSON "
                f"body for {status}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        errors = sorted(_validator(spec, schema).iter_errors(body),
                        key=lambda e: (list(map(str, e.absolute_path)), e.message))
        return [f"{where}: {_json_path(e)}: {_describe(e)}" for e in errors]


def check_schemas(spec):
    """Checks each schema of spec["components"]["schemas"] against the Draft 2020-12
    meta-schema (which the official OpenAPI schema does not do). Returns error strings
    ("components/schemas/Name: ..."), empty when all are valid."""
    errors = []
    meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        for e in meta.iter_errors(schema):
            errors.append(f"components/schemas/{name}: {_json_path(e)}: {_describe(e)}")
    return errors


def check_records(spec, lines):
    """Validates response records; returns (failures, exercised).

    `lines` yields JSONL text lines, each {"method", "path", "status", "body"} (blank lines are
    skipped). `failures` is a list of strings, each naming its line number; a line that is not
    such a record is a failure too. `exercised` is the set of (METHOD, template) routes that
    some record reached.
    """
    failures, exercised = [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            method, path, status = record["method"], record["path"], record["status"]
            body = record.get("body")
        except (ValueError, KeyError, TypeError) as e:
            failures.append(f"line {number}: not a record {{method, path, status, body}}: {e}")
            continue
        template = match(spec, method, path)
        if template is not None and method.lower() in spec["paths"][template]:
            exercised.add((method.upper(), template))
        failures.extend(f"line {number}: {e}"
                        for e in validate_response(spec, method, path, status, body))
    return failures, exercised


def main(argv=None):
    """The program: see the module's docstring. Returns the exit code."""
    parser = argparse.ArgumentParser(description="Check recorded API responses against an "
                                                 "OpenAPI document.")
    parser.add_argument("spec", help="the OpenAPI document (api/openapi.json)")
    parser.add_argument("records", help="JSONL: one {method, path, status, body} a line")
    args = parser.parse_args(argv)
    try:
        spec = load(args.spec)
        with open(args.records, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    failures = [f"spec: {e}" for e in check_schemas(spec)]
    record_failures, exercised = check_records(spec, lines)
    failures += record_failures
    checked = sum(1 for line in lines if line.strip())
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"{checked} responses checked, {len(failures)} failures")

    routes = route_templates(spec)
    missed = sorted(routes - exercised, key=lambda r: (r[1], r[0]))
    print(f"{len(routes) - len(missed)} of {len(routes)} routes exercised")
    if missed:
        print("never exercised:")
        for method, template in missed:
            print(f"  {method} {template}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
