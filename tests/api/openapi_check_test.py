"""Tests of openapi_check against api/openapi.json, with hand-made response bodies.

Run from tests/api: python3 -m unittest openapi_check_test
or from the repository: python3 -m unittest discover -s tests/api -p '*_test.py'
"""

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import openapi_check  # noqa: E402

SPEC_PATH = os.path.join(HERE, "..", "..", "api", "openapi.json")

# Every route of the contract (notes/api-contract.md, "Routes").
CONTRACT_ROUTES = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/session"),
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/projects"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects/{p}"),
    ("DELETE", "/api/v1/projects/{p}"),
    ("PATCH", "/api/v1/projects/{p}/branches/{b}"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/protect"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/schedules"),
    ("GET", "/api/v1/schedules"),
    ("DELETE", "/api/v1/schedules/{id}"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/unprotect"),
    ("POST", "/api/v1/projects/{p}/rename"),
    ("POST", "/api/v1/projects/{p}/refresh"),
    ("GET", "/api/v1/projects/{p}/branches"),
    ("POST", "/api/v1/projects/{p}/branches"),
    ("GET", "/api/v1/projects/{p}/branches/{b}"),
    ("PUT", "/api/v1/projects/{p}/branches/{b}"),
    ("DELETE", "/api/v1/projects/{p}/branches/{b}"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/reset"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/rebase"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/start"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/stop"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/suspend"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/resume"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/rename"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/use"),
    ("GET", "/api/v1/projects/{p}/branches/{b}/snapshots"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/snapshots"),
    ("GET", "/api/v1/projects/{p}/branches/{b}/history"),
    ("GET", "/api/v1/projects/{p}/branches/{b}/logs"),
    ("GET", "/api/v1/projects/{p}/branches/{b}/wal"),
    ("POST", "/api/v1/projects/{p}/branches/{b}/wal/cleanup"),
    ("GET", "/api/v1/snapshots"),
    ("GET", "/api/v1/snapshots/{id}"),
    ("DELETE", "/api/v1/snapshots/{id}"),
    ("POST", "/api/v1/snapshots/cleanup"),
    ("GET", "/api/v1/wal"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/doctor"),
    ("POST", "/api/v1/doctor"),
    ("GET", "/api/v1/operations"),
    ("GET", "/api/v1/operations/{id}"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/serve/log"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{name}"),
}

BRANCH_PATH = "/api/v1/projects/demo/branches/dev"


def branch(**changes):
    """A branch as `ToJson(BranchInfo, UriForm)` prints it, with `changes` applied."""
    body = {
        "name": "dev",
        "project": "demo",
        "parent": "demo/main",
        "state": "running",
        "runtime_detail": "running",
        "port": 5433,
        "host": "127.0.0.1",
        "user": "postgres",
        "uri": "postgresql://postgres:****@127.0.0.1:5433/postgres",
        "size_bytes": 41943040,
        "exclusive_bytes": None,
        "sizes_measured_at": None,
        "created_at": "2026-12-02T17:00:00.123Z",
        "started_at": "2026-12-02T17:00:01.456Z",
        "uptime_seconds": 42,
        "pid": 4242,
        "pg_version": "15",
        "data_dir": "/var/lib/pgbranch/pool/v-2/data",
        "log_path": "/var/lib/pgbranch/logs/branch-2.log",
        "container": "",
        "snapshot_id": 7,
        "recovery_target": None,
        "recoverable": {
            "from_time": "2026-12-02T16:00:00.000Z",
            "from_lsn": "0/3000060",
            "from_snapshot": 7,
            "to": "now",
        },
        "active": False,
        "suspend_after_s": None,
        "expires_at": "2026-12-04T16:00:00.000Z",
        "idle_ttl_s": None,
        "idle_expires_at": None,
        "protected": True,
        "labels": {"pr": "42"},
    }
    body.update(changes)
    return body


def operation(**changes):
    """An Operation as the contract shows it, with `changes` applied."""
    body = {
        "id": "op-1a2b3c4d5e6f",
        "kind": "branch.create",
        "target": "demo/dev",
        "status": "queued",
        "steps": [],
        "notes": [],
        "error": None,
        "result": None,
        "created_at": "2026-12-02T17:00:00.000Z",
        "started_at": None,
        "ended_at": None,
        "token": "ci",
    }
    body.update(changes)
    return body


def error(code, message="branch create demo/dev: it already exists"):
    return {"error": {"code": code, "message": message}}


class OpenApiCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spec = openapi_check.load(SPEC_PATH)

    def check(self, method, path, status, body):
        return openapi_check.validate_response(self.spec, method, path, status, body)

    # --- the document itself

    def test_document_is_openapi_3_1_0_with_valid_schemas(self):
        self.assertEqual(self.spec["openapi"], "3.1.0")
        self.assertEqual(openapi_check.check_schemas(self.spec), [])

    def test_check_schemas_finds_a_bad_schema(self):
        spec = copy.deepcopy(self.spec)
        spec["components"]["schemas"]["Health"]["properties"]["version"]["type"] = "strin"
        errors = openapi_check.check_schemas(spec)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("components/schemas/Health", errors[0])

    def test_routes_are_the_contracts(self):
        self.assertEqual(openapi_check.route_templates(self.spec), CONTRACT_ROUTES)

    def test_every_operation_has_an_id_and_open_routes_need_no_token(self):
        for method, template in openapi_check.route_templates(self.spec):
            op = self.spec["paths"][template][method.lower()]
            self.assertIn("operationId", op, (method, template))
        for template in ("/api/v1/health", "/api/v1/openapi.json"):
            self.assertEqual(self.spec["paths"][template]["get"]["security"], [])

    # --- match

    def test_match_strips_the_query_and_fills_parameters(self):
        self.assertEqual(
            openapi_check.match(self.spec, "POST", BRANCH_PATH + "/reset?wait=true&timeout=5"),
            "/api/v1/projects/{p}/branches/{b}/reset")
        self.assertEqual(openapi_check.match(self.spec, "get", BRANCH_PATH),
                         "/api/v1/projects/{p}/branches/{b}")
        self.assertEqual(openapi_check.match(self.spec, "GET", "/api/v1/snapshots/12"),
                         "/api/v1/snapshots/{id}")

    def test_match_prefers_literal_segments(self):
        self.assertEqual(openapi_check.match(self.spec, "POST", "/api/v1/snapshots/cleanup"),
                         "/api/v1/snapshots/cleanup")
        self.assertEqual(
            openapi_check.match(self.spec, "POST", BRANCH_PATH + "/wal/cleanup?wait=true"),
            "/api/v1/projects/{p}/branches/{b}/wal/cleanup")

    def test_match_prefers_literal_segments_in_a_spec_of_its_own(self):
        spec = {"paths": {"/a/{x}/c": {"get": {}}, "/a/b/{y}": {"get": {}},
                          "/a/{x}/{y}": {"get": {}}}}
        self.assertEqual(openapi_check.match(spec, "GET", "/a/b/c"), "/a/b/{y}")
        self.assertEqual(openapi_check.match(spec, "GET", "/a/z/c"), "/a/{x}/c")
        self.assertEqual(openapi_check.match(spec, "GET", "/a/z/q"), "/a/{x}/{y}")

    def test_match_prefers_a_template_that_has_the_method(self):
        # No GET on /snapshots/cleanup: a router reaches GET /snapshots/{id}.
        self.assertEqual(openapi_check.match(self.spec, "GET", "/api/v1/snapshots/cleanup"),
                         "/api/v1/snapshots/{id}")

    def test_match_needs_whole_non_empty_segments(self):
        for path in ("/api/v1/projects/demo/branches/", "/api/v1/projects//branches",
                     "/api/v1/projects/demo/branches/dev/nope", "/api/v2/status", "/"):
            self.assertIsNone(openapi_check.match(self.spec, "GET", path), path)

    # --- validate_response

    def test_valid_branch_bodies_pass(self):
        self.assertEqual(self.check("GET", BRANCH_PATH, 200, branch(limit_bytes=None, proxy_uri=None)), [])
        self.assertEqual(self.check("GET", BRANCH_PATH, 200, branch(limit_bytes=2 << 30, proxy_uri="postgresql://postgres:****@127.0.0.1:5432/demo/dev")), [])
        main = branch(name="main", parent=None, recoverable=None, size_bytes=None, pid=None,
                      started_at=None, uptime_seconds=None, snapshot_id=None)
        self.assertEqual(self.check("GET", "/api/v1/projects/demo/branches?sizes=false", 200,
                                    [main, branch()]), [])

    def test_a_body_missing_a_required_field_fails(self):
        body = branch(limit_bytes=None, proxy_uri=None)
        del body["uri"]
        errors = self.check("GET", BRANCH_PATH, 200, body)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("'uri' is a required property", errors[0])

    def test_wrong_types_and_unknown_fields_fail(self):
        errors = self.check("GET", "/api/v1/projects/demo/branches", 200,
                            [branch(pid="4242", surprise=1)])
        self.assertEqual(len(errors), 2, errors)
        self.assertTrue(any("$[0].pid" in e for e in errors), errors)
        self.assertTrue(any("surprise" in e for e in errors), errors)
        # A list's branch has no limit_bytes.
        self.assertNotEqual(self.check("GET", "/api/v1/projects/demo/branches", 200,
                                       [branch(limit_bytes=None, proxy_uri=None)]), [])

    def test_an_undocumented_status_fails(self):
        errors = self.check("GET", BRANCH_PATH, 418, error("internal"))
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("status 418 is not documented", errors[0])
        self.assertNotEqual(self.check("GET", "/api/v1/health", 404, error("not_found")), [])

    def test_an_undocumented_path_or_method_fails(self):
        self.assertIn("no path", self.check("GET", "/api/v1/nope", 200, {})[0])
        self.assertIn("OPTIONS is not documented",
                      self.check("OPTIONS", BRANCH_PATH, 200, branch())[0])

    def test_errors(self):
        self.assertEqual(self.check("GET", BRANCH_PATH, 404, error("not_found")), [])
        self.assertEqual(self.check("GET", "/api/v1/status", 429, error("too_many_requests")), [])
        self.assertNotEqual(self.check("GET", BRANCH_PATH, 404, error("nope")), [])
        self.assertNotEqual(self.check("GET", BRANCH_PATH, 404, {"message": "x"}), [])

    def test_operations(self):
        path = "/api/v1/projects/demo/branches"
        self.assertEqual(self.check("POST", path, 202, operation()), [])
        done = operation(
            status="succeeded",
            steps=[{"name": "Checkpoint", "started_at": "2026-12-02T17:00:00.123Z",
                    "ended_at": "2026-12-02T17:00:00.154Z", "seconds": 0.031}],
            result=branch(uri="postgresql://postgres:secret@127.0.0.1:5433/postgres"),
            started_at="2026-12-02T17:00:00.100Z", ended_at="2026-12-02T17:00:02.000Z")
        self.assertEqual(self.check("POST", path + "?wait=true", 201, done), [])
        failed = operation(status="failed", error=error("already_exists")["error"])
        self.assertEqual(self.check("POST", path + "?wait=true", 409,
                                    {**error("already_exists"), "operation": failed}), [])
        self.assertNotEqual(self.check("POST", path, 202, operation(status="done")), [])
        self.assertNotEqual(self.check("POST", path, 202, operation(result={"x": 1})), [])
        self.assertNotEqual(self.check("POST", path, 202, operation(updated_at="x")), [])
        # A create answers 201, not 200, when it waited.
        self.assertNotEqual(self.check("POST", path + "?wait=true", 200, done), [])

    def test_put_of_an_existing_branch_answers_the_branch(self):
        self.assertEqual(self.check("PUT", BRANCH_PATH, 200, branch()), [])
        self.assertEqual(self.check("PUT", BRANCH_PATH, 202, operation()), [])

    def test_bodies_where_none_is_documented(self):
        self.assertEqual(self.check("DELETE", "/api/v1/tokens/ci", 204, None), [])
        self.assertNotEqual(self.check("DELETE", "/api/v1/tokens/ci", 204, {}), [])
        self.assertNotEqual(self.check("GET", "/api/v1/health", 200, None), [])
        # The event stream is not JSON: any body passes.
        self.assertEqual(self.check("GET", "/api/v1/events", 200, None), [])

    def test_other_entities(self):
        self.assertEqual(self.check("GET", "/api/v1/health", 200,
                                    {"status": "ok", "version": "0.1.0"}), [])
        self.assertEqual(self.check("POST", "/api/v1/tokens", 201, {
            "name": "ci", "scope": "write", "created_at": "2026-12-02T17:00:00.000Z",
            "token": "pgbt_3_abc"}), [])
        self.assertEqual(self.check("GET", "/api/v1/tokens", 200, [{
            "name": "ci", "scope": "write", "created_at": "2026-12-02T17:00:00.000Z",
            "last_used_at": None}]), [])
        self.assertEqual(self.check("GET", "/api/v1/audit?limit=1", 200, [{
            "id": 1, "at": "2026-12-02T17:00:00.000Z", "command": "branch create demo/dev",
            "operation": "pool.CreateSnapshot", "object": "v-1@s-1", "detail": "",
            "duration_ms": 1.5, "ok": True, "error": "", "operation_id": None, "step": ""}]), [])
        self.assertEqual(self.check("GET", "/api/v1/status", 200, {
            "home": "/var/lib/pgbranch",
            "pool": {"configured": True, "kind": "btrfs", "description": "image", "why": "auto",
                     "atomic_snapshots": True, "copy_on_write": True},
            "runtime": {"kind": "native", "os_user": "postgres"},
            "port_range": "5433-5532", "projects": [], "branches": [branch()]}), [])

    # --- the program

    def run_main(self, records):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("\n".join(json.dumps(r) for r in records) + "\n")
        self.addCleanup(os.unlink, f.name)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = openapi_check.main([SPEC_PATH, f.name])
        return code, out.getvalue()

    def test_main_passes_good_records_and_lists_routes_never_exercised(self):
        code, out = self.run_main([
            {"method": "GET", "path": "/api/v1/health", "status": 200,
             "body": {"status": "ok", "version": "0.1.0"}},
            {"method": "GET", "path": BRANCH_PATH, "status": 200, "body": branch(limit_bytes=None, proxy_uri=None)},
        ])
        self.assertEqual(code, 0, out)
        self.assertIn("2 of 52 routes exercised", out)
        self.assertIn("  POST /api/v1/snapshots/cleanup", out)
        self.assertNotIn("  GET /api/v1/health\n", out)

    def test_main_fails_on_a_bad_record(self):
        code, out = self.run_main([
            {"method": "GET", "path": "/api/v1/health", "status": 200, "body": {"status": "ok"}},
            {"method": "GET", "path": "/api/v1/health"},
        ])
        self.assertEqual(code, 1, out)
        self.assertIn("FAIL line 1:", out)
        self.assertIn("FAIL line 2:", out)


if __name__ == "__main__":
    unittest.main()
