import assert from 'node:assert/strict'
import pino from 'pino'
import { AdminApi, ApiError } from '../../daemon/api/server.js'
import { AdminClient, ApiCallError } from '../../daemon/api/client.js'
import { freePorts } from '../../daemon/cluster/index.js'

describe('admin API', () => {
  const password = 'ab'.repeat(32)
  let api: AdminApi
  let base: string

  before(async () => {
    api = new AdminApi({
      listen: { host: '127.0.0.1', port: 0 },
      password,
      logger: pino({ level: 'silent' }),
      maxBodyBytes: 1024,
      routes: [
        {
          method: 'GET',
          path: '/v1/hello',
          handler: async (r) => ({ hello: r.query.get('name') ?? 'world', sats: 2_100_000_000_000_000n })
        },
        { method: 'POST', path: '/v1/echo', handler: async (r) => ({ echo: r.body }) },
        {
          method: 'GET',
          path: '/v1/fail',
          handler: async () => {
            throw new ApiError(409, 'conflict', 'that conflicts', { statement: 'abc' })
          }
        }
      ],
      publicRoutes: [{ path: '/metrics', contentType: 'text/plain', handler: async () => 'up 1\n' }]
    })
    const address = await api.start()
    base = `http://127.0.0.1:${address.port}`
  })
  after(async () => {
    await api.stop()
  })

  const basic = (credential: string): string => 'Basic ' + Buffer.from(credential).toString('base64')

  it('answers 401 without a credential, or with a wrong one', async () => {
    const none = await fetch(`${base}/v1/hello`)
    assert.equal(none.status, 401)
    assert.equal(none.headers.get('www-authenticate'), 'Basic realm="poolboard"')
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'unauthorized')
    const wrong = await fetch(`${base}/v1/hello`, {
      headers: { authorization: basic(`__cookie__:${'cd'.repeat(32)}`) }
    })
    assert.equal(wrong.status, 401)
    const wrongUser = await fetch(`${base}/v1/hello`, { headers: { authorization: basic(`admin:${password}`) } })
    assert.equal(wrongUser.status, 401)
  })

  it('answers with the cookie credential, and satoshi bigints come out as JSON numbers', async () => {
    const client = new AdminClient({ host: '127.0.0.1', port: Number(new URL(base).port) }, `__cookie__:${password}`)
    assert.deepEqual(await client.get('/v1/hello?name=pool'), { hello: 'pool', sats: 2_100_000_000_000_000 })
    assert.deepEqual(await client.post('/v1/echo', { a: [1, 2] }), { echo: { a: [1, 2] } })
  })

  it('errors carry a code, a message and details; unknown paths are 404', async () => {
    const client = new AdminClient({ host: '127.0.0.1', port: Number(new URL(base).port) }, `__cookie__:${password}`)
    await assert.rejects(
      client.get('/v1/fail'),
      (err: unknown) =>
        err instanceof ApiCallError && err.status === 409 && err.code === 'conflict' && err.body.statement === 'abc'
    )
    await assert.rejects(client.get('/v1/nothing'), (err: unknown) => err instanceof ApiCallError && err.status === 404)
    await assert.rejects(client.get('/v1/echo'), (err: unknown) => err instanceof ApiCallError && err.status === 405)
  })

  it('refuses bodies over the limit and bodies that are not JSON', async () => {
    const headers = { authorization: basic(`__cookie__:${password}`), 'content-type': 'application/json' }
    const big = await fetch(`${base}/v1/echo`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ x: 'y'.repeat(2000) })
    })
    assert.equal(big.status, 413)
    const bad = await fetch(`${base}/v1/echo`, { method: 'POST', headers, body: '{nope' })
    assert.equal(bad.status, 400)
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'bad-json')
  })

  // Rule (issue 11): a body is a JSON object sent as application/json; anything else is a 4xx, never a 500.
  it('refuses null, arrays and bodies that are not sent as application/json', async () => {
    const headers = { authorization: basic(`__cookie__:${password}`), 'content-type': 'application/json' }
    for (const body of ['null', '[1]', '"x"', '7']) {
      const res = await fetch(`${base}/v1/echo`, { method: 'POST', headers, body })
      assert.equal(res.status, 400, body)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'bad-request')
    }
    const plain = await fetch(`${base}/v1/echo`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'text/plain' },
      body: '{"a":1}'
    })
    assert.equal(plain.status, 415)
    const charset = await fetch(`${base}/v1/echo`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json; charset=utf-8' },
      body: '{"a":1}'
    })
    assert.equal(charset.status, 200)
  })

  it('serves /metrics without a credential', async () => {
    const res = await fetch(`${base}/metrics`)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'up 1\n')
  })

  it('a client to a port where nothing listens says so', async () => {
    const [port] = await freePorts(1)
    const client = new AdminClient({ host: '127.0.0.1', port }, 'x')
    await assert.rejects(client.get('/v1/status'), new RegExp(`no node answers at 127\\.0\\.0\\.1:${port}`))
  })
})
