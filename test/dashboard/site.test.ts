import assert from 'node:assert/strict'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import pino from 'pino'
import { DashboardSessions } from '../../daemon/dashboard/sessions.js'
import { DashboardSite, readCookie, serveSites } from '../../daemon/dashboard/site.js'
import { waitFor } from '../helpers/process.js'

/**
 * The dashboard's web site over real HTTP on loopback (docs/dashboard.md, "Getting in"): the
 * one-time link, the session cookie, the Host check against DNS rebinding, the live stream, and
 * the CSRF check of actions.
 */

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

async function call(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string; stopAfterBytes?: number }
): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: { host: `127.0.0.1:${port}`, ...options.headers }
      },
      (res) => {
        let body = ''
        res.on('data', (d: Buffer) => {
          body += d.toString()
          if (options.stopAfterBytes !== undefined && body.length >= options.stopAfterBytes) {
            req.destroy()
            resolve({ status: res.statusCode!, headers: res.headers, body })
          }
        })
        res.on('end', () => {
          resolve({ status: res.statusCode!, headers: res.headers, body })
        })
        res.on('error', () => {
          resolve({ status: res.statusCode!, headers: res.headers, body })
        })
      }
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

describe('dashboard site', () => {
  let nowMs = 1_000_000
  let state = { n: 1 }
  const actions: string[] = []
  const sessions = new DashboardSessions(
    { linkTtlMs: 60_000, sessionTtlMs: 3_600_000, maxLinks: 4, maxSessions: 4 },
    () => nowMs
  )
  const site = new DashboardSite({
    kind: 'node',
    title: 'test',
    prefix: '/dashboard',
    cookieName: 'pb_test',
    logger: pino({ level: 'silent' }),
    sessions,
    pollMs: 50,
    source: { snapshot: async () => state },
    actions: {
      stop: {
        run: async (b) => {
          actions.push(JSON.stringify(b))
          return { ok: true }
        }
      }
    }
  })
  let server: Awaited<ReturnType<typeof serveSites>>
  let port = 0
  before(async () => {
    server = await serveSites([site], 0)
    port = server.port
  })
  after(async () => {
    await server.close()
  })

  const login = async (): Promise<{ cookie: string; csrf: string }> => {
    const url = new URL(site.link(`http://127.0.0.1:${port}`))
    const r = await call(port, { path: url.pathname + url.search })
    assert.equal(r.status, 303)
    const setCookie = r.headers['set-cookie']![0]
    const cookie = setCookie.split(';')[0]
    const page = await call(port, { path: '/dashboard/', headers: { cookie } })
    assert.equal(page.status, 200)
    const csrf = /name="poolboard-csrf" content="([^"]+)"/.exec(page.body)![1]
    return { cookie, csrf }
  }

  it('a link is good once; it becomes an HttpOnly, SameSite=Strict cookie scoped to the page', async () => {
    const url = new URL(site.link(`http://127.0.0.1:${port}`))
    assert.match(url.search, /^\?token=[A-Za-z0-9_-]{43}$/)
    const first = await call(port, { path: url.pathname + url.search })
    assert.equal(first.status, 303)
    assert.equal(first.headers.location, '/dashboard/')
    assert.match(
      first.headers['set-cookie']![0],
      /^pb_test=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/dashboard$/
    )
    const again = await call(port, { path: url.pathname + url.search })
    assert.equal(again.status, 401)
    assert.match(again.body, /used or expired/)
    assert.equal(first.headers['referrer-policy'], 'no-referrer', 'the token does not leak through Referer')
  })

  it('a link expires; a session outlives it', async () => {
    const url = new URL(site.link(`http://127.0.0.1:${port}`))
    const { cookie } = await login()
    nowMs += 61_000
    assert.equal((await call(port, { path: url.pathname + url.search })).status, 401)
    assert.equal((await call(port, { path: '/dashboard/snapshot', headers: { cookie } })).status, 200)
  })

  it('without a session: no page, no snapshot, no stream', async () => {
    for (const path of ['/dashboard/', '/dashboard/snapshot', '/dashboard/events']) {
      const r = await call(port, { path, headers: { cookie: 'pb_test=forged' } })
      assert.equal(r.status, 401, path)
    }
  })

  it('answers only to a loopback Host on its own port (DNS rebinding)', async () => {
    const { cookie } = await login()
    for (const host of ['evil.example:' + port, `127.0.0.1:${port + 1}`, 'localhost']) {
      const r = await call(port, { path: '/dashboard/snapshot', headers: { cookie, host } })
      assert.equal(r.status, 403, host)
    }
    assert.equal(
      (await call(port, { path: '/dashboard/snapshot', headers: { cookie, host: `localhost:${port}` } })).status,
      200
    )
  })

  it('the stream sends the snapshot at once and again after a change', async () => {
    const { cookie } = await login()
    state = { n: 1 }
    const events: string[] = []
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/dashboard/events', headers: { host: `127.0.0.1:${port}`, cookie } },
      (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
        res.on('data', (d: Buffer) => {
          events.push(d.toString())
        })
      }
    )
    req.end()
    try {
      await waitFor('the first snapshot', () => events.join('').includes('event: snapshot\ndata: {"n":1}'))
      state = { n: 2 }
      site.poke()
      await waitFor('the second snapshot', () => events.join('').includes('data: {"n":2}'))
      assert.equal(events.join('').split('data: {"n":1}').length, 2, 'an unchanged snapshot is not sent again')
    } finally {
      req.destroy()
    }
  })

  it("an action needs the session's CSRF token and a same-origin Origin", async () => {
    const { cookie, csrf } = await login()
    const body = '{"node":1}'
    assert.equal(
      (await call(port, { method: 'POST', path: '/dashboard/action/stop', headers: { cookie }, body })).status,
      403
    )
    assert.equal(
      (
        await call(port, {
          method: 'POST',
          path: '/dashboard/action/stop',
          headers: { cookie, 'x-csrf-token': 'x' + csrf.slice(1) },
          body
        })
      ).status,
      403
    )
    assert.equal(
      (
        await call(port, {
          method: 'POST',
          path: '/dashboard/action/stop',
          headers: { cookie, 'x-csrf-token': csrf, origin: 'http://evil.example' },
          body
        })
      ).status,
      403
    )
    assert.deepEqual(actions, [], 'nothing ran')
    const ok = await call(port, {
      method: 'POST',
      path: '/dashboard/action/stop',
      headers: { cookie, 'x-csrf-token': csrf, origin: `http://127.0.0.1:${port}` },
      body
    })
    assert.equal(ok.status, 200)
    assert.deepEqual(actions, [body])
    assert.equal(
      (
        await call(port, {
          method: 'POST',
          path: '/dashboard/action/nope',
          headers: { cookie, 'x-csrf-token': csrf },
          body
        })
      ).status,
      404
    )
    assert.equal(
      (
        await call(port, {
          method: 'POST',
          path: '/dashboard/action/stop',
          headers: { cookie, 'x-csrf-token': csrf },
          body: 'x'.repeat(20_000)
        })
      ).status,
      413
    )
  })

  it('reads one cookie out of a Cookie header', () => {
    assert.equal(readCookie('a=1; pb_test=xyz; b=2', 'pb_test'), 'xyz')
    assert.equal(readCookie('pb_testx=1', 'pb_test'), undefined)
    assert.equal(readCookie(undefined, 'pb_test'), undefined)
  })
})
