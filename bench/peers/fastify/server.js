// bench/peers/fastify/server.js: the Fastify peer of libbackend's benchmark
// (bench/peers.sh), the same four endpoints as the C server, written the way
// Fastify's documentation recommends.
//
// Started: `npm ci` in a directory holding package.json and package-lock.json,
// server.js copied there, then `node DIR/server.js` (modules are looked up
// beside this file and in NODE_PATH, then in the working directory). Node's
// cluster module forks PEER_WORKERS workers, each a Fastify instance on the
// same port; the primary restarts nothing and exits when a worker dies.
//
// Environment:
//   PORT               listen on 127.0.0.1:PORT
//   PEER_WORKERS       worker processes (default 2)
//   PEER_PG_DSN        libpq conninfo, e.g. "host=/tmp/sock port=5432 user=u dbname=d"
//                      (parsed here into pg's config; a host starting with "/"
//                      is a Unix socket directory)
//   PEER_MEMCACHED     memcached as host:port
//   PEER_CACHE_PREFIX  a prefix for every memcached key (e.g. "peers-fastify:")
//   PEER_JWT_KEY_FILE  a file whose bytes, all of them, are the HS256 secret
//   PEER_JWT_ISS       the issuer a token must carry
//   PEER_JWT_AUD       the audience a token must carry
//
// Choices: @fastify/jwt (fast-jwt) verifies tokens in an onRequest hook, without
// fast-jwt's verified-token cache (off by default); route schemas validate the
// query string (400 in Fastify's shape) and serialise answers
// (fast-json-stringify); pg.Pool of 4 connections per worker, with int8
// columns parsed as JavaScript numbers (ids, prices and counts stay below
// 2^53); memjs as the memcached client, a failed read taken as a miss and the
// cache written without waiting for memcached's answer.
//
// SPDX-License-Identifier: MIT
'use strict'

const cluster = require('node:cluster')
const fs = require('node:fs')
const path = require('node:path')
const { createRequire } = require('node:module')

// Modules come from beside this file (or NODE_PATH), as require() finds them,
// else from the working directory's node_modules.
const requireFromCwd = createRequire(path.join(process.cwd(), 'server.js'))
function load (name) {
  try {
    return require(name)
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err
    return requireFromCwd(name)
  }
}

// A libpq conninfo string ("key=value key='quoted value'") as pg's config.
function parseConninfo (conninfo) {
  const names = { host: 'host', port: 'port', user: 'user', password: 'password', dbname: 'database', application_name: 'application_name' }
  const config = {}
  const pair = /\s*(\w+)\s*=\s*(?:'((?:\\.|[^'\\])*)'|((?:\\.|[^\s'\\])*))\s*/y
  while (pair.lastIndex < conninfo.length) {
    const m = pair.exec(conninfo)
    if (m === null) throw new Error(`PEER_PG_DSN: cannot parse ${JSON.stringify(conninfo)}`)
    const value = (m[2] ?? m[3]).replace(/\\(.)/g, '$1')
    if (Object.hasOwn(names, m[1])) config[names[m[1]]] = m[1] === 'port' ? Number(value) : value
    else console.error(`fastify peer: PEER_PG_DSN: ${m[1]} ignored`)
  }
  return config
}

// RBAC policy: role -> permissions, with inheritance; "*" grants everything.
const POLICY = {
  customer: { permissions: ['orders:create', 'orders:read:own', 'profile:read'] },
  editor: { inherits: ['customer'], permissions: ['products:write'] },
  admin: { permissions: ['*'] }
}

function effective (role, seen = new Set()) {
  const entry = POLICY[role]
  const perms = new Set(entry.permissions)
  seen.add(role)
  for (const parent of entry.inherits || []) {
    if (!seen.has(parent)) for (const p of effective(parent, seen)) perms.add(p)
  }
  return perms
}

const PERMISSIONS = new Map(Object.keys(POLICY).map((role) => [role, effective(role)]))

function allowed (roles, permission) {
  if (!Array.isArray(roles)) return false
  return roles.some((role) => {
    const granted = PERMISSIONS.get(role)
    return granted !== undefined && (granted.has('*') || granted.has(permission))
  })
}

const PRODUCT_SQL = 'SELECT id, sku, name, description, price, currency, stock, created_at, updated_at' +
  ' FROM backendd.products WHERE id = $1'
const LIST_SQL = 'SELECT id, sku, name, description, price, currency, stock, created_at, updated_at,' +
  ' count(*) OVER () AS total' +
  ' FROM backendd.products ORDER BY id LIMIT $1 OFFSET $2'
const COUNT_SQL = 'SELECT count(*) AS total FROM backendd.products'
const PRODUCT_ID = /^[0-9]{1,18}$/
const CACHE_TTL = 60 // seconds

async function startWorker () {
  const Fastify = load('fastify')
  const fastifyJwt = load('@fastify/jwt')
  const pg = load('pg')
  const memjs = load('memjs')

  pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value))
  const pool = new pg.Pool({ ...parseConninfo(process.env.PEER_PG_DSN), max: 4 })
  const cache = memjs.Client.create(process.env.PEER_MEMCACHED, { logger: { log () {} } })
  const prefix = process.env.PEER_CACHE_PREFIX ?? 'peers-fastify:'

  const app = Fastify({ logger: false })

  app.register(fastifyJwt, {
    secret: fs.readFileSync(process.env.PEER_JWT_KEY_FILE), // a Buffer: the raw bytes
    verify: {
      algorithms: ['HS256'],
      allowedIss: process.env.PEER_JWT_ISS,
      allowedAud: process.env.PEER_JWT_AUD,
      requiredClaims: ['exp', 'iss', 'aud']
    }
  })

  app.addSchema({
    $id: 'product',
    type: 'object',
    properties: {
      id: { type: 'integer' },
      sku: { type: 'string' },
      name: { type: 'string' },
      description: { type: 'string' },
      price: { type: 'integer' },
      currency: { type: 'string' },
      stock: { type: 'integer' },
      created_at: { type: 'string', format: 'date-time' },
      updated_at: { type: 'string', format: 'date-time' }
    }
  })

  async function authenticate (request, reply) {
    try {
      await request.jwtVerify()
    } catch (err) {
      reply.code(401).header('WWW-Authenticate', 'Bearer')
        .send({ statusCode: 401, error: 'Unauthorized', message: err.message })
      return reply
    }
  }

  function requirePermission (permission) {
    return async function (request, reply) {
      if (!allowed(request.user.roles, permission)) {
        reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `${permission} is not granted` })
        return reply
      }
    }
  }

  app.get('/json', {
    schema: { response: { 200: { type: 'object', properties: { message: { type: 'string' } } } } }
  }, async () => ({ message: 'Hello, World!' }))

  app.get('/api/v1/me', {
    onRequest: [authenticate, requirePermission('profile:read')],
    schema: {
      response: {
        200: {
          type: 'object',
          properties: { sub: { type: 'string' }, roles: { type: 'array', items: { type: 'string' } } }
        }
      }
    }
  }, async (request) => ({ sub: request.user.sub, roles: request.user.roles }))

  app.get('/api/v1/products/:id', {
    schema: { response: { 200: { $ref: 'product#' } } }
  }, async (request, reply) => {
    const { id } = request.params
    if (!PRODUCT_ID.test(id)) {
      return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no such product' })
    }
    const key = prefix + 'product:' + id
    let cached = null
    try {
      cached = (await cache.get(key)).value
    } catch {
      // memcached is down or slow: answer from PostgreSQL
    }
    if (cached) return reply.type('application/json; charset=utf-8').send(cached)

    const { rows } = await pool.query(PRODUCT_SQL, [id])
    if (rows.length === 0) {
      return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no such product' })
    }
    const body = reply.serialize(rows[0]) // the route's 200 serializer; these bytes are cached
    cache.set(key, body, { expires: CACHE_TTL }).catch(() => {})
    return reply.type('application/json; charset=utf-8').send(body)
  })

  app.get('/api/v1/products', {
    schema: {
      querystring: {
        type: 'object',
        properties: {
          page: { type: 'integer', minimum: 1, default: 1 },
          per_page: { type: 'integer', minimum: 1, maximum: 100, default: 20 }
        }
      },
      response: {
        200: {
          type: 'object',
          properties: {
            items: { type: 'array', items: { $ref: 'product#' } },
            total: { type: 'integer' },
            page: { type: 'integer' },
            per_page: { type: 'integer' },
            total_pages: { type: 'integer' }
          }
        }
      }
    }
  }, async (request) => {
    const { page, per_page: perPage } = request.query
    const { rows } = await pool.query(LIST_SQL, [perPage, (page - 1) * perPage])
    let total = 0
    if (rows.length > 0) total = rows[0].total
    else if (page > 1) total = (await pool.query(COUNT_SQL)).rows[0].total
    return { items: rows, total, page, per_page: perPage, total_pages: Math.ceil(total / perPage) }
  })

  app.addHook('onClose', async () => {
    cache.close()
    await pool.end()
  })
  process.on('SIGTERM', () => {
    app.close().then(() => process.exit(0), () => process.exit(1))
  })

  await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
}

const WORKERS = Number(process.env.PEER_WORKERS || 2)

if (cluster.isPrimary) {
  let stopping = false
  for (let i = 0; i < WORKERS; i++) cluster.fork()
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`fastify peer: worker ${worker.process.pid} died (${signal || code}), exiting`)
      stopping = true
      for (const other of Object.values(cluster.workers)) other.process.kill('SIGTERM')
      process.exitCode = 1
    }
    if (Object.keys(cluster.workers).length === 0) process.exit()
  })
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      stopping = true
      for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM')
    })
  }
} else {
  startWorker().catch((err) => {
    console.error('fastify peer: cannot start:', err)
    process.exit(1)
  })
}
