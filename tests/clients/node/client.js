#!/usr/bin/env node
// node-postgres (pg) client used by pgbranch end-to-end tests.
//
// Usage: node client.js info | query SQL | cancel
//
// The contract (connection settings, output, exit codes) is in ../README.md;
// ../psycopg2_client.py and ../jdbc/Client.java behave the same way.
// Settings are mapped explicitly from the PG* variables onto a config object
// (never a connection string, so a database name such as "P/B/DB" is sent
// verbatim). Run ./install.sh first to get node_modules from the lockfile.
'use strict'

const fs = require('fs')
const net = require('net')
const path = require('path')
const tls = require('tls')
const pg = require('pg')

const EXIT_OK = 0
const EXIT_FAIL = 1
const EXIT_USAGE = 2

const INFO_SQL =
  'select current_database(), current_user, inet_server_port(), pg_backend_pid(), ' +
  '(select ssl from pg_stat_ssl where pid = pg_backend_pid()), ' +
  "current_setting('cluster_name')"
const CANCEL_AFTER_MS = 1000 // before the cancel is sent
const CANCEL_LIMIT_S = 10 // the statement must have failed with 57014 within this
const WATCHDOG_MS = 15000 // give up (exit 1) if the statement is still running then

// Every value as the server sent it in text format (no parsing to JS types).
const RAW_TYPES = { getTypeParser: () => (value) => value }

function scrub(msg) {
  let s = String(msg === undefined || msg === null ? '' : msg).trim()
  const pw = process.env.PGPASSWORD || ''
  if (pw) s = s.split(pw).join('********')
  return s
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// Only an ErrorResponse from the server carries a SQLSTATE; socket errors have
// codes like ECONNREFUSED, which are not one.
function sqlstateOf(err) {
  return err instanceof pg.DatabaseError && typeof err.code === 'string' ? err.code : null
}

function errorJson(err) {
  return { error: scrub(err && err.message ? err.message : err), sqlstate: sqlstateOf(err) }
}

class UsageError extends Error {}

function sslConfig(env, host) {
  const mode = env.PGSSLMODE || 'disable'
  switch (mode) {
    case 'disable':
      return false
    case 'require':
      // encrypt, but do not verify the certificate (as libpq's and pgjdbc's require)
      return { rejectUnauthorized: false }
    case 'verify-ca':
    case 'verify-full': {
      if (!env.PGSSLROOTCERT) throw new Error(`PGSSLMODE=${mode} needs PGSSLROOTCERT`)
      const ssl = { ca: fs.readFileSync(env.PGSSLROOTCERT), rejectUnauthorized: true }
      if (mode === 'verify-ca') {
        ssl.checkServerIdentity = () => undefined
      } else if (net.isIP(host) === 0) {
        // pg also sets this itself for names; never for an IP (RFC 6066), where
        // it passes `host` to tls.connect, which then checks the IP SANs.
        ssl.servername = host
      }
      return ssl
    }
    default:
      throw new Error(`unsupported PGSSLMODE=${mode} (disable|require|verify-ca|verify-full)`)
  }
}

function config() {
  const env = process.env
  const host = env.PGHOST || 'localhost'
  const timeout = parseInt(env.PGCONNECT_TIMEOUT || '10', 10)
  if (!(timeout >= 0)) throw new Error(`bad PGCONNECT_TIMEOUT=${env.PGCONNECT_TIMEOUT}`)
  const cfg = {
    host,
    port: parseInt(env.PGPORT || '5432', 10),
    user: env.PGUSER || require('os').userInfo().username,
    password: env.PGPASSWORD || undefined,
    ssl: sslConfig(env, host),
    connectionTimeoutMillis: 1000 * timeout,
  }
  cfg.database = env.PGDATABASE || cfg.user
  if (env.PGOPTIONS) cfg.options = env.PGOPTIONS // startup parameter "options"
  return cfg
}

// Connects, runs fn(client) and always closes the connection (an open one
// would keep the process alive).
async function withClient(cfg, fn) {
  const client = new pg.Client(cfg)
  // errors after connect (e.g. the server going away) must not crash the process
  client.on('error', () => {})
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

async function cmdInfo(cfg) {
  return withClient(cfg, async (client) => {
    const res = await client.query({ text: INFO_SQL, rowMode: 'array' })
    const [database, user, port, pid, ssl, cluster] = res.rows[0]
    const one = await client.query({ text: 'select 1', rowMode: 'array' })
    // pg_stat_ssl describes the server's side of the connection: through the
    // proxy, the proxy's own link. client_ssl is whether pg's socket is TLS.
    const stream = client.connection.stream
    const clientSsl = Boolean(stream && (stream instanceof tls.TLSSocket || stream.encrypted))
    emit({ database, user, port, pid, ssl, client_ssl: clientSsl, answer: one.rows[0][0], cluster_name: cluster })
    return EXIT_OK
  })
}

async function cmdQuery(cfg, sql) {
  let res = await withClient(cfg, (client) => client.query({ text: sql, rowMode: 'array', types: RAW_TYPES }))
  // several statements in one string: pg returns one result per statement;
  // take the last, like psql and the other clients
  if (Array.isArray(res)) res = res[res.length - 1]
  emit(res && res.rows ? res.rows : [])
  return EXIT_OK
}

// The protocol's CancelRequest, the way pg sends it (Client#cancel): a new
// pg.Connection to the same server, in cleartext, carrying the processID and
// secretKey that the client got in BackendKeyData. Resolves to an error
// message, or null once the server has closed that connection.
function sendCancel(cfg, client) {
  return new Promise((resolve) => {
    const con = new pg.Connection()
    const timer = setTimeout(() => { con.stream.destroy(); resolve('cancel connection timed out') }, 10000)
    const done = (msg) => { clearTimeout(timer); resolve(msg) }
    con.on('error', (err) => done(scrub(err.message)))
    con.on('end', () => done(null))
    con.on('connect', () => con.cancel(client.processID, client.secretKey))
    if (cfg.host.startsWith('/')) con.connect(`${cfg.host}/.s.PGSQL.${cfg.port}`)
    else con.connect(cfg.port, cfg.host)
  })
}

async function cmdCancel(cfg) {
  return withClient(cfg, (client) => cancelSleep(cfg, client))
}

async function cancelSleep(cfg, client) {
  let cancelError = null
  let cancelSent = null
  const timer = setTimeout(() => {
    cancelSent = sendCancel(cfg, client).then((msg) => { cancelError = msg })
  }, CANCEL_AFTER_MS)
  const watchdog = setTimeout(() => {
    const out = { cancelled: false, sqlstate: null, seconds: WATCHDOG_MS / 1000,
      error: `select pg_sleep(30) still running after ${WATCHDOG_MS / 1000} s` }
    if (cancelError) out.cancel_error = cancelError
    emit(out)
    process.exit(EXIT_FAIL)
  }, WATCHDOG_MS)

  const start = process.hrtime.bigint()
  let sqlstate = null
  let error = null
  try {
    await client.query('select pg_sleep(30)')
  } catch (err) {
    sqlstate = sqlstateOf(err)
    error = scrub(err.message)
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  clearTimeout(timer)
  if (cancelSent) await cancelSent
  const cancelled = sqlstate === '57014' && seconds < CANCEL_LIMIT_S

  // the session must still work after the cancel
  let after = null
  let afterError = null
  try {
    const res = await client.query({ text: 'select 1', rowMode: 'array' })
    after = res.rows[0][0]
  } catch (err) {
    afterError = scrub(err.message)
  }
  clearTimeout(watchdog)

  const out = { cancelled, sqlstate, seconds: Math.round(seconds * 1000) / 1000, after }
  if (error === null) out.error = 'select pg_sleep(30) was not cancelled'
  else if (sqlstate !== '57014') out.error = error
  else if (!cancelled) out.error = `cancelled only after ${seconds.toFixed(3)} s`
  if (cancelError) out.cancel_error = cancelError
  if (afterError) out.after_error = afterError
  emit(out)
  return cancelled && after === 1 ? EXIT_OK : EXIT_FAIL
}

async function main(argv) {
  const prog = path.basename(argv[1] || 'client.js')
  const cmd = argv[2]
  try {
    if (cmd === 'info' && argv.length === 3) return await cmdInfo(config())
    if (cmd === 'query' && argv.length === 4 && argv[3].trim() !== '') return await cmdQuery(config(), argv[3])
    if (cmd === 'cancel' && argv.length === 3) return await cmdCancel(config())
    throw new UsageError(`usage: ${prog} info | query SQL | cancel (SQL not empty)`)
  } catch (err) {
    emit(errorJson(err))
    return err instanceof UsageError ? EXIT_USAGE : EXIT_FAIL
  }
}

main(process.argv).then(
  (code) => { process.exitCode = code },
  (err) => { emit(errorJson(err)); process.exitCode = EXIT_FAIL },
)
