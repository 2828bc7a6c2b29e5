// pgjdbc client used by pgbranch end-to-end tests.
//
// Usage (through run.sh, which compiles this file against Debian's pgjdbc):
//   run.sh info | query SQL | cancel
//
// The contract (connection settings, output, exit codes) is in ../README.md;
// ../psycopg2_client.py and ../node/client.js behave the same way. pgjdbc does
// not read the PG* variables itself: they are mapped onto the URL and the
// connection Properties here.

import java.io.PrintStream;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

public final class Client {
  static final int EXIT_OK = 0;
  static final int EXIT_FAIL = 1;
  static final int EXIT_USAGE = 2;

  static final String INFO_SQL =
      "select current_database(), current_user, inet_server_port(), pg_backend_pid(), "
          + "(select ssl from pg_stat_ssl where pid = pg_backend_pid()), "
          + "current_setting('cluster_name')";
  static final long CANCEL_AFTER_MS = 1000; // before the cancel is sent
  static final double CANCEL_LIMIT_S = 10; // the statement must have failed with 57014 within this
  static final long WATCHDOG_MS = 15000; // give up (exit 1) if the statement is still running then

  static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

  /** An error to report as {"error", "sqlstate"}; sqlstate is the server's, or null. */
  static final class ClientError extends Exception {
    final String sqlstate;
    final boolean usage;

    ClientError(String message, String sqlstate, boolean usage) {
      super(message);
      this.sqlstate = sqlstate;
      this.usage = usage;
    }
  }

  // --- output ---------------------------------------------------------------

  static String scrub(String msg) {
    String s = msg == null ? "" : msg.strip();
    String pw = env("PGPASSWORD");
    return pw == null ? s : s.replace(pw, "********");
  }

  static void json(StringBuilder b, Object v) {
    if (v == null) {
      b.append("null");
    } else if (v instanceof String) {
      String s = (String) v;
      b.append('"');
      for (int i = 0; i < s.length(); i++) {
        char c = s.charAt(i);
        switch (c) {
          case '"': b.append("\\\""); break;
          case '\\': b.append("\\\\"); break;
          case '\n': b.append("\\n"); break;
          case '\r': b.append("\\r"); break;
          case '\t': b.append("\\t"); break;
          case '\b': b.append("\\b"); break;
          case '\f': b.append("\\f"); break;
          default:
            if (c < 0x20 || Character.isSurrogate(c) && !validSurrogateAt(s, i)) {
              b.append(String.format("\\u%04x", (int) c));
            } else {
              b.append(c);
            }
        }
      }
      b.append('"');
    } else if (v instanceof Boolean || v instanceof Integer || v instanceof Long) {
      b.append(v);
    } else if (v instanceof Double) {
      b.append(v); // only finite values are ever written
    } else if (v instanceof Map) {
      b.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
        if (!first) b.append(',');
        first = false;
        json(b, e.getKey().toString());
        b.append(':');
        json(b, e.getValue());
      }
      b.append('}');
    } else if (v instanceof List) {
      b.append('[');
      boolean first = true;
      for (Object o : (List<?>) v) {
        if (!first) b.append(',');
        first = false;
        json(b, o);
      }
      b.append(']');
    } else {
      throw new IllegalArgumentException("no JSON for " + v.getClass());
    }
  }

  static boolean validSurrogateAt(String s, int i) {
    char c = s.charAt(i);
    if (Character.isHighSurrogate(c)) {
      return i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
    }
    return i > 0 && Character.isHighSurrogate(s.charAt(i - 1));
  }

  static synchronized void emit(Object v) {
    StringBuilder b = new StringBuilder();
    json(b, v);
    OUT.println(b);
  }

  static Map<String, Object> obj(Object... kv) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
    return m;
  }

  // --- errors -------------------------------------------------------------------

  /**
   * The server's SQLSTATE and primary message when the error came in an ErrorResponse;
   * otherwise pgjdbc's message and no SQLSTATE (pgjdbc makes up its own states, such as
   * 08001 for a refused connection, which the other clients have no counterpart for).
   */
  static ClientError fromSql(SQLException e) {
    if (e instanceof PSQLException) {
      ServerErrorMessage m = ((PSQLException) e).getServerErrorMessage();
      if (m != null && m.getSQLState() != null) {
        return new ClientError(scrub(m.getMessage()), m.getSQLState(), false);
      }
    }
    return new ClientError(scrub(e.getMessage()), null, false);
  }

  // --- connection settings ------------------------------------------------------

  static String env(String name) {
    String v = System.getenv(name);
    return v == null || v.isEmpty() ? null : v;
  }

  static Connection connect() throws ClientError {
    String host = env("PGHOST") != null ? env("PGHOST") : "localhost";
    String port = env("PGPORT") != null ? env("PGPORT") : "5432";
    String user = env("PGUSER") != null ? env("PGUSER") : System.getProperty("user.name");
    String db = env("PGDATABASE") != null ? env("PGDATABASE") : user;
    if (host.startsWith("/")) {
      throw new ClientError("pgjdbc cannot connect to a Unix socket (PGHOST=" + host + ")", null, false);
    }
    if (host.contains(":") && !host.startsWith("[")) host = "[" + host + "]"; // IPv6 literal
    // pgjdbc URL-decodes the database name: encode it, so "P/B/DB" arrives verbatim.
    String url = "jdbc:postgresql://" + host + ":" + port + "/" + URLEncoder.encode(db, StandardCharsets.UTF_8);

    Properties p = new Properties();
    p.setProperty("user", user);
    if (env("PGPASSWORD") != null) p.setProperty("password", env("PGPASSWORD"));
    if (env("PGOPTIONS") != null) p.setProperty("options", env("PGOPTIONS")); // startup "options"
    String mode = env("PGSSLMODE") != null ? env("PGSSLMODE") : "disable";
    switch (mode) {
      case "disable":
      case "require": // pgjdbc's require encrypts without verifying, as node's and ours for libpq
        break;
      case "verify-ca":
      case "verify-full":
        if (env("PGSSLROOTCERT") == null) {
          throw new ClientError("PGSSLMODE=" + mode + " needs PGSSLROOTCERT", null, false);
        }
        p.setProperty("sslrootcert", env("PGSSLROOTCERT"));
        break;
      default:
        throw new ClientError(
            "unsupported PGSSLMODE=" + mode + " (disable|require|verify-ca|verify-full)", null, false);
    }
    p.setProperty("sslmode", mode);
    String timeout = env("PGCONNECT_TIMEOUT") != null ? env("PGCONNECT_TIMEOUT") : "10";
    try {
      if (Integer.parseInt(timeout) < 0) throw new NumberFormatException();
    } catch (NumberFormatException e) {
      throw new ClientError("bad PGCONNECT_TIMEOUT=" + timeout, null, false);
    }
    p.setProperty("connectTimeout", timeout);
    p.setProperty("loginTimeout", timeout);
    try {
      // autocommit (pgjdbc's default): 'query' behaves like psql, and a cancelled
      // statement does not leave the session in an aborted transaction.
      return DriverManager.getConnection(url, p);
    } catch (SQLException e) {
      throw fromSql(e);
    }
  }

  // --- commands -----------------------------------------------------------------

  static Integer intOrNull(ResultSet rs, int col) throws SQLException {
    int v = rs.getInt(col);
    return rs.wasNull() ? null : v;
  }

  static int info() throws ClientError {
    try (Connection c = connect(); Statement st = c.createStatement()) {
      Map<String, Object> out;
      try (ResultSet rs = st.executeQuery(INFO_SQL)) {
        rs.next();
        String database = rs.getString(1);
        String user = rs.getString(2);
        Integer port = intOrNull(rs, 3);
        Integer pid = intOrNull(rs, 4);
        boolean sslValue = rs.getBoolean(5);
        Boolean ssl = rs.wasNull() ? null : sslValue;
        String cluster = rs.getString(6);
        // pg_stat_ssl describes the server's side of the connection: through the
        // proxy, the proxy's own link. pgjdbc has no public API that says whether
        // its own socket is TLS, so client_ssl is null.
        out = obj("database", database, "user", user, "port", port, "pid", pid, "ssl", ssl,
            "client_ssl", null, "answer", null, "cluster_name", cluster);
      }
      try (ResultSet rs = st.executeQuery("select 1")) {
        rs.next();
        out.put("answer", intOrNull(rs, 1));
      }
      emit(out);
      return EXIT_OK;
    } catch (SQLException e) {
      throw fromSql(e);
    }
  }

  static List<List<String>> rows(ResultSet rs) throws SQLException {
    List<List<String>> rows = new ArrayList<>();
    ResultSetMetaData md = rs.getMetaData();
    int n = md.getColumnCount();
    while (rs.next()) {
      List<String> row = new ArrayList<>(n);
      // statements run once are sent unnamed and their results come in text
      // format, which getString returns as the server sent it
      for (int i = 1; i <= n; i++) row.add(rs.getString(i));
      rows.add(row);
    }
    return rows;
  }

  static int query(String sql) throws ClientError {
    try (Connection c = connect(); Statement st = c.createStatement()) {
      // several statements in one string: the last one's result, like psql
      List<List<String>> last = new ArrayList<>();
      boolean isResultSet = st.execute(sql);
      while (true) {
        if (isResultSet) {
          try (ResultSet rs = st.getResultSet()) {
            last = rows(rs);
          }
        } else if (st.getUpdateCount() == -1) {
          break;
        } else {
          last = new ArrayList<>();
        }
        isResultSet = st.getMoreResults();
      }
      emit(last);
      return EXIT_OK;
    } catch (SQLException e) {
      throw fromSql(e);
    }
  }

  static int cancel() throws ClientError {
    try (Connection c = connect(); Statement st = c.createStatement()) {
      final String[] cancelError = {null};
      final AtomicBoolean finished = new AtomicBoolean(false);
      Thread canceller = new Thread(() -> {
        try {
          Thread.sleep(CANCEL_AFTER_MS);
          st.cancel(); // pgjdbc: a CancelRequest on a new connection
        } catch (InterruptedException ignored) {
          // the statement ended before the cancel was due
        } catch (SQLException e) {
          synchronized (cancelError) {
            cancelError[0] = scrub(e.getMessage());
          }
        }
      });
      canceller.setDaemon(true);
      Thread watchdog = new Thread(() -> {
        try {
          Thread.sleep(WATCHDOG_MS);
        } catch (InterruptedException e) {
          return;
        }
        synchronized (Client.class) { // emit's lock: the main thread cannot print as well
          if (finished.get()) return;
          Map<String, Object> out = obj("cancelled", false, "sqlstate", null, "seconds",
              WATCHDOG_MS / 1000.0, "error",
              "select pg_sleep(30) still running after " + WATCHDOG_MS / 1000 + " s");
          synchronized (cancelError) {
            if (cancelError[0] != null) out.put("cancel_error", cancelError[0]);
          }
          emit(out);
          Runtime.getRuntime().halt(EXIT_FAIL);
        }
      });
      watchdog.setDaemon(true);
      watchdog.start();

      String sqlstate = null;
      String error = null;
      long start = System.nanoTime();
      canceller.start();
      try {
        st.execute("select pg_sleep(30)");
      } catch (SQLException e) {
        ClientError ce = fromSql(e);
        sqlstate = ce.sqlstate;
        error = ce.getMessage();
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      canceller.interrupt();
      try {
        canceller.join();
      } catch (InterruptedException ignored) {
        // not interrupted
      }
      boolean cancelled = "57014".equals(sqlstate) && seconds < CANCEL_LIMIT_S;

      // the session must still work after the cancel
      Integer after = null;
      String afterError = null;
      try (ResultSet rs = st.executeQuery("select 1")) {
        rs.next();
        after = intOrNull(rs, 1);
      } catch (SQLException e) {
        afterError = fromSql(e).getMessage();
      }

      synchronized (Client.class) {
        finished.set(true);
        watchdog.interrupt();
        Map<String, Object> out = obj("cancelled", cancelled, "sqlstate", sqlstate, "seconds",
            Math.round(seconds * 1000) / 1000.0, "after", after);
        if (error == null) {
          out.put("error", "select pg_sleep(30) was not cancelled");
        } else if (!"57014".equals(sqlstate)) {
          out.put("error", error);
        } else if (!cancelled) {
          out.put("error", String.format("cancelled only after %.3f s", seconds));
        }
        synchronized (cancelError) {
          if (cancelError[0] != null) out.put("cancel_error", cancelError[0]);
        }
        if (afterError != null) out.put("after_error", afterError);
        emit(out);
      }
      return cancelled && after != null && after == 1 ? EXIT_OK : EXIT_FAIL;
    } catch (SQLException e) {
      throw fromSql(e);
    }
  }

  static int run(String[] args) throws ClientError {
    if (args.length == 1 && args[0].equals("info")) return info();
    if (args.length == 2 && args[0].equals("query") && !args[1].isBlank()) return query(args[1]);
    if (args.length == 1 && args[0].equals("cancel")) return cancel();
    throw new ClientError("usage: run.sh info | query SQL | cancel (SQL not empty)", null, true);
  }

  public static void main(String[] args) {
    int code;
    try {
      code = run(args);
    } catch (ClientError e) {
      emit(obj("error", e.getMessage(), "sqlstate", e.sqlstate));
      code = e.usage ? EXIT_USAGE : EXIT_FAIL;
    } catch (RuntimeException e) {
      emit(obj("error", scrub(String.valueOf(e)), "sqlstate", null));
      code = EXIT_FAIL;
    }
    OUT.flush();
    System.exit(code);
  }
}
