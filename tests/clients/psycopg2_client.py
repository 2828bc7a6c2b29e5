#!/usr/bin/python3
"""psycopg2 (libpq) client used by pgbranch end-to-end tests.

Usage: psycopg2_client.py info | query SQL | cancel

The contract (connection settings, output, exit codes) is in README.md beside
this file; node/client.js and jdbc/Client.java behave the same way.

Uses Debian's python3-psycopg2, hence /usr/bin/python3 explicitly (a pyenv
python3 earlier in PATH has no psycopg2).
"""

import ctypes
import json
import os
import re
import select
import sys
import threading
import time

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

INFO_SQL = ("select current_database(), current_user, inet_server_port(), pg_backend_pid(), "
            "(select ssl from pg_stat_ssl where pid = pg_backend_pid()), "
            "current_setting('cluster_name')")
CANCEL_AFTER = 1.0     # seconds before the cancel is sent
CANCEL_LIMIT = 10.0    # the statement must have failed with 57014 within this
WATCHDOG = 15.0        # give up (exit 1) if the statement is still running then

_out_lock = threading.Lock()


def scrub(msg):
    """Never let the password reach the output, whatever a driver puts in a message."""
    msg = str(msg).strip()
    pw = os.environ.get("PGPASSWORD", "")
    if pw:
        msg = msg.replace(pw, "********")
    return msg


def dumps(obj):
    # UTF-8 as is (like JSON.stringify and the Java client), whatever the locale
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape")


def emit(obj):
    with _out_lock:
        sys.stdout.buffer.write(dumps(obj))
        sys.stdout.flush()


class ClientError(Exception):
    """An error to report as {"error", "sqlstate"}: sqlstate is the server's, or None."""

    def __init__(self, message, sqlstate=None):
        super().__init__(message)
        self.sqlstate = sqlstate


try:
    import psycopg2
    import psycopg2.extensions
except ImportError as e:  # pragma: no cover - environment problem
    emit({"error": "psycopg2 not importable by %s: %s" % (sys.executable, e), "sqlstate": None})
    sys.exit(EXIT_FAIL)


# --- SQLSTATE of a failed connection ----------------------------------------
#
# psycopg2 gives no pgcode for an error during connection (libpq has no API for
# it: the ErrorResponse only reaches PQerrorMessage). With verbose error
# messages libpq writes the SQLSTATE into that text ("FATAL:  28P01: ..."), and
# libpq lets the verbosity be set on a connection that is still being
# established. psycopg2 connects with PQconnectStart + polling when a wait
# callback is installed ("green" mode, a documented psycopg2 feature), and calls
# the callback before the first poll: that is where the verbosity is set. The
# connection is otherwise an ordinary blocking psycopg2 connection.

PQERRORS_DEFAULT = 1
PQERRORS_VERBOSE = 2
_libpq = None
_connect_state = {"deadline": None, "pending": False}
_VERBOSE_RE = re.compile(r"\b(?:FATAL|ERROR|PANIC):  ([0-9A-Z]{5}): ([^\n]*)")


def set_verbosity(conn, level):
    global _libpq
    try:
        if _libpq is None:
            lib = ctypes.CDLL("libpq.so.5")  # the library psycopg2 itself is linked with
            lib.PQsetErrorVerbosity.argtypes = [ctypes.c_void_p, ctypes.c_int]
            lib.PQsetErrorVerbosity.restype = ctypes.c_int
            _libpq = lib
        ptr = conn.pgconn_ptr
        if ptr:
            _libpq.PQsetErrorVerbosity(ptr, level)
    except (OSError, AttributeError):
        pass  # without it a connection error just has no SQLSTATE


def wait_callback(conn):
    """psycopg2 wait callback: poll until done; during connection, enforce the timeout."""
    if _connect_state["pending"]:
        _connect_state["pending"] = False
        set_verbosity(conn, PQERRORS_VERBOSE)
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        timeout = None
        deadline = _connect_state["deadline"]
        if deadline is not None:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise psycopg2.OperationalError("timeout expired")
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn.fileno()], [], [], timeout)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [], timeout)
        else:
            raise psycopg2.OperationalError("bad state from poll: %s" % state)


psycopg2.extensions.set_wait_callback(wait_callback)


def connect_error(exc):
    text = str(exc)
    m = _VERBOSE_RE.search(text)
    if m:
        return ClientError(scrub(m.group(2)), m.group(1))
    return ClientError(scrub(text), getattr(exc, "pgcode", None))


def query_error(exc):
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return ClientError(scrub(primary or exc), getattr(exc, "pgcode", None))


# --- connection settings -----------------------------------------------------

def connect_kwargs():
    """The psycopg2.connect arguments and the connection timeout in seconds."""
    env = os.environ
    kw = {
        "host": env.get("PGHOST") or "localhost",
        "port": env.get("PGPORT") or "5432",
    }
    # libpq would read most of these by itself; they are passed explicitly so
    # the mapping is the same as in the other two clients.
    for var, key in (("PGUSER", "user"), ("PGPASSWORD", "password"),
                     ("PGDATABASE", "dbname"), ("PGOPTIONS", "options")):
        if env.get(var):
            kw[key] = env[var]
    mode = env.get("PGSSLMODE") or "disable"
    if mode not in ("disable", "require", "verify-ca", "verify-full"):
        raise ClientError("unsupported PGSSLMODE=%s (disable|require|verify-ca|verify-full)" % mode)
    kw["sslmode"] = mode
    if mode in ("verify-ca", "verify-full"):
        if not env.get("PGSSLROOTCERT"):
            raise ClientError("PGSSLMODE=%s needs PGSSLROOTCERT" % mode)
        kw["sslrootcert"] = env["PGSSLROOTCERT"]
    elif mode == "require":
        # libpq verifies the server under 'require' when a root certificate file
        # exists (PGSSLROOTCERT, ~/.postgresql/root.crt); node-postgres and pgjdbc
        # never do. A path that cannot exist keeps libpq to encryption only.
        kw["sslrootcert"] = "/nonexistent/pgbranch-require-does-not-verify"
    timeout = env.get("PGCONNECT_TIMEOUT") or "10"
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = -1
    if not seconds >= 0:
        raise ClientError("bad PGCONNECT_TIMEOUT=%s" % timeout)
    return kw, seconds


def connect():
    kw, timeout = connect_kwargs()
    # libpq enforces connect_timeout only in its blocking connect, not when
    # polled: wait_callback enforces it
    _connect_state["pending"] = True
    _connect_state["deadline"] = time.monotonic() + timeout
    try:
        conn = psycopg2.connect(**kw)
    except psycopg2.Error as e:
        raise connect_error(e)
    finally:
        _connect_state["pending"] = False
        _connect_state["deadline"] = None
    set_verbosity(conn, PQERRORS_DEFAULT)
    # autocommit: 'query' behaves like psql, and a cancelled statement does not
    # leave the session in an aborted transaction.
    conn.autocommit = True
    return conn


def raw_text_cursor(conn):
    """A cursor that returns every value exactly as the server sent it (text format).

    psycopg2 picks its typecasters when a result arrives, so pass-through
    casters are registered on the cursor for every OID that has a caster; OIDs
    without one are returned as str anyway.
    """
    cur = conn.cursor()
    oids = tuple(psycopg2.extensions.string_types.keys())
    raw = psycopg2.extensions.new_type(oids, "PGB_RAW", lambda value, _cur: value)
    psycopg2.extensions.register_type(raw, cur)
    return cur


# --- commands ------------------------------------------------------------------

def cmd_info():
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(INFO_SQL)
            db, user, port, pid, ssl, cluster = cur.fetchone()
            cur.execute("select 1")
            answer = cur.fetchone()[0]
    except psycopg2.Error as e:
        raise query_error(e)
    # pg_stat_ssl describes the server's side of the connection: through the
    # proxy, the proxy's own link. client_ssl is what libpq says about ours.
    client_ssl = bool(conn.info.ssl_in_use)
    conn.close()
    emit({"database": db, "user": user, "port": port, "pid": pid, "ssl": ssl,
          "client_ssl": client_ssl, "answer": answer, "cluster_name": cluster})
    return EXIT_OK


def cmd_query(sql):
    conn = connect()
    try:
        with raw_text_cursor(conn) as cur:
            cur.execute(sql)  # several statements: the last one's result, like psql
            rows = cur.fetchall() if cur.description is not None else []
    except psycopg2.Error as e:
        raise query_error(e)
    conn.close()
    emit([list(row) for row in rows])
    return EXIT_OK


def cmd_cancel():
    conn = connect()
    cancel_error = []

    def canceller():
        time.sleep(CANCEL_AFTER)
        try:
            conn.cancel()  # libpq PQcancel: a CancelRequest on a new connection
        except Exception as e:  # noqa: BLE001 - report whatever happened
            cancel_error.append(scrub(e))

    def watchdog():
        time.sleep(WATCHDOG)
        out = {"cancelled": False, "sqlstate": None, "seconds": WATCHDOG,
               "error": "select pg_sleep(30) still running after %g s" % WATCHDOG}
        if cancel_error:
            out["cancel_error"] = cancel_error[0]
        emit(out)
        os._exit(EXIT_FAIL)

    sqlstate = None
    error = None
    cur = conn.cursor()
    threading.Thread(target=watchdog, daemon=True).start()
    t = threading.Thread(target=canceller, daemon=True)
    start = time.monotonic()
    t.start()
    try:
        cur.execute("select pg_sleep(30)")
    except psycopg2.Error as e:
        err = query_error(e)
        sqlstate, error = err.sqlstate, str(err)
    elapsed = time.monotonic() - start
    t.join()
    cancelled = sqlstate == "57014" and elapsed < CANCEL_LIMIT

    # the session must still work after the cancel
    after = None
    after_error = None
    try:
        cur = conn.cursor()
        cur.execute("select 1")
        after = cur.fetchone()[0]
    except psycopg2.Error as e:
        after_error = str(query_error(e))
    conn.close()

    with _out_lock:  # the watchdog must not print as well
        out = {"cancelled": cancelled, "sqlstate": sqlstate, "seconds": round(elapsed, 3),
               "after": after}
        if error is None:
            out["error"] = "select pg_sleep(30) was not cancelled"
        elif sqlstate != "57014":
            out["error"] = error
        elif not cancelled:
            out["error"] = "cancelled only after %.3f s" % elapsed
        if cancel_error:
            out["cancel_error"] = cancel_error[0]
        if after_error:
            out["after_error"] = after_error
        sys.stdout.buffer.write(dumps(out))
        sys.stdout.flush()
        os._exit(EXIT_OK if cancelled and after == 1 else EXIT_FAIL)


def main(argv):
    try:
        if len(argv) == 2 and argv[1] == "info":
            return cmd_info()
        if len(argv) == 3 and argv[1] == "query" and argv[2].strip():
            return cmd_query(argv[2])
        if len(argv) == 2 and argv[1] == "cancel":
            return cmd_cancel()
    except ClientError as e:
        emit({"error": str(e), "sqlstate": e.sqlstate})
        return EXIT_FAIL
    except psycopg2.Error as e:  # anything not mapped above
        emit({"error": scrub(e), "sqlstate": getattr(e, "pgcode", None)})
        return EXIT_FAIL
    emit({"error": "usage: %s info | query SQL | cancel (SQL not empty)" % os.path.basename(argv[0]),
          "sqlstate": None})
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv))
