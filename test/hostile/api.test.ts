import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import fc from 'fast-check'
import { AdminClient } from '../../daemon/api/client.js'
import { TestCluster } from '../helpers/cluster.js'
import { isAlive } from '../helpers/process.js'

/** Writes raw bytes to the admin API and returns what came back (maybe nothing) once the server closes or goes quiet. */
async function rawRequest(port: number, bytes: Buffer, quietMs = 1_500): Promise<string> {
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    const socket = connect(port, '127.0.0.1')
    let timer = setTimeout(done, quietMs)
    function done(): void {
      clearTimeout(timer)
      socket.destroy()
      resolve(Buffer.concat(chunks).toString('latin1'))
    }
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      // One answer is enough: stop once its head is in (bodies are short JSON).
      if (Buffer.concat(chunks).includes('\r\n\r\n')) {
        clearTimeout(timer)
        timer = setTimeout(done, 50)
      }
    })
    socket.on('error', done)
    socket.on('close', done)
    socket.write(bytes)
  })
}

const statusOf = (answer: string): number | undefined => {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(answer)
  return m === null ? undefined : Number(m[1])
}

// Rule (issue 11, "no request can crash a node"): every request, however malformed, gets a 4xx/5xx
// JSON answer or a closed connection, and the node keeps answering /v1/status.
describe('hostile: the admin API of a real node survives any request', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let port: number
  let cookie: string
  let client: AdminClient
  let pid: number

  before(async () => {
    cluster = await TestCluster.up(1)
    const node = await cluster.node(1)
    port = Number(node.api.split(':')[1])
    cookie = readFileSync(join(cluster.datadir(1), '.cookie'), 'utf8').trim()
    client = new AdminClient({ host: '127.0.0.1', port }, cookie)
    assert.ok(node.pid !== null)
    pid = node.pid
  })
  after(async () => {
    await cluster?.destroy()
  })

  const auth = (): string => 'Basic ' + Buffer.from(cookie).toString('base64')
  const alive = async (): Promise<void> => {
    assert.ok(isAlive(pid), 'the node process is alive')
    const status = await client.get<{ peerId: string }>('/v1/status')
    assert.equal(typeof status.peerId, 'string')
  }
  const post = (path: string, body: string, contentType: string): Buffer =>
    Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth()}\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    )

  it('the attacks the issue names answer 4xx and leave the node up', async () => {
    const badTarget = await rawRequest(port, Buffer.from('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
    assert.equal(statusOf(badTarget), 400, badTarget)
    await alive()
    for (const path of ['/v1/board/members', '/v1/board/transfer', '/v1/pool/pay']) {
      const nullBody = await rawRequest(port, post(path, 'null', 'application/json'))
      assert.equal(statusOf(nullBody), 400, `${path} with a null body: ${nullBody}`)
      assert.match(nullBody, /"code":"bad-request"/)
    }
    const plain = await rawRequest(port, post('/v1/board/transfer', '{"to":"node1"}', 'text/plain'))
    assert.equal(statusOf(plain), 415, plain)
    await alive()
    assert.doesNotMatch(cluster.log(1), /admin API handler failed/, 'no handler threw on these')
  })

  it('random request lines, methods, headers, bodies and content types (fast-check)', async () => {
    const paths = [
      '/',
      '//[',
      '/v1/status',
      '/v1/board/status',
      '/v1/board/members',
      '/v1/board/transfer',
      '/v1/board/entries',
      '/v1/board/log',
      '/v1/pool/status',
      '/v1/pool/pay',
      '/v1/pool/partition',
      '/v1/pool/kick',
      '/v1/pool/create',
      '/v1/chain/mine',
      '/v1/chain/status',
      '/v1/defense',
      '/v1/lab/censor',
      '/v1/lab/equivocate',
      '/metrics',
      '/v1/board/entries?from=-1&limit=1e99',
      '/v1/board/log?from=9007199254740993'
    ]
    const text = fc.string({ maxLength: 40 })
    const target = fc.oneof(
      fc.constantFrom(...paths),
      fc.constantFrom(...paths).chain((p) => text.map((t) => p + t)),
      text.map((t) => '/' + t),
      fc.constantFrom('*', '//[', 'http://[::1', '/%', '/%zz', '/v1/board/entries?from=%ff&limit=', '/\u0000')
    )
    const method = fc.oneof(
      fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT'),
      fc.stringMatching(/^[A-Z]{1,8}$/)
    )
    const jsonValue = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null')
    const body = fc.oneof(
      jsonValue,
      text,
      fc.constantFrom(
        '',
        'null',
        '[]',
        '"x"',
        '1e999',
        '{"to":null}',
        '{"op":"add","member":{}}',
        '{"to":"node1"}',
        '{"amountSats":-1,"to":"node1"}',
        '{"__proto__":{"x":1}}',
        '{'
      )
    )
    const contentType = fc.oneof(
      fc.constantFrom(
        'application/json',
        'text/plain',
        'application/json; charset=utf-8',
        '',
        'multipart/form-data; boundary=x'
      ),
      text
    )
    const header = fc.tuple(
      fc.stringMatching(/^[A-Za-z-]{1,16}$/),
      fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, ''))
    )
    const request = fc.record({
      method,
      target,
      withAuth: fc.boolean(),
      contentType,
      body,
      headers: fc.array(header, { maxLength: 3 }),
      lengthDelta: fc.constantFrom(0, 0, 0, -1, 5),
      raw: fc.option(fc.uint8Array({ maxLength: 200 }), { freq: 8 })
    })
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let bytes: Buffer
        if (r.raw !== null) {
          bytes = Buffer.from(r.raw)
        } else {
          const length = Math.max(0, Buffer.byteLength(r.body) + r.lengthDelta)
          const head = [
            `${r.method} ${r.target} HTTP/1.1`,
            'Host: x',
            ...(r.withAuth ? [`Authorization: ${auth()}`] : []),
            `Content-Type: ${r.contentType}`,
            `Content-Length: ${length}`,
            ...r.headers.map(([k, v]) => `${k}: ${v}`),
            'Connection: close'
          ]
          bytes = Buffer.from(head.join('\r\n') + '\r\n\r\n' + r.body)
        }
        const answer = await rawRequest(port, bytes, 300)
        const status = statusOf(answer)
        if (status !== undefined && status >= 500) assert.fail(`a 5xx answer: ${answer}`)
        await alive()
      }),
      { numRuns: 150, seed: 11, endOnFailure: true }
    )
    const failures = cluster
      .log(1)
      .split('\n')
      .filter((l) => l.includes('admin API handler failed'))
    assert.deepEqual(failures, [], 'no handler threw')
  })
})
