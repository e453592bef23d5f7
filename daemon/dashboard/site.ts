import assert from 'node:assert'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { jsonReplacer } from '../api/server.js'
import { LogLimiter, type Logger } from '../host/log.js'
import { DashboardSessions, sameText } from './sessions.js'

/**
 * One dashboard web site: a page, its script bundle, a live stream of snapshots (server-sent
 * events) and, optionally, actions the page may post. The same site runs inside a node's admin
 * API (a node's own page) and in a process of its own (a cluster's page, the lab's watch page).
 *
 *     GET  PREFIX/login?token=T   trade a one-time link token for a session cookie, then PREFIX/
 *     GET  PREFIX/                the page (session)
 *     GET  PREFIX/app.js|app.css  the bundle built by `npm run build`
 *     GET  PREFIX/snapshot        the current snapshot as JSON (session)
 *     GET  PREFIX/events          server-sent events: `snapshot` on every change, `ping` every 2 s (session)
 *     POST PREFIX/action/NAME     an action (session, same origin, X-CSRF-Token header)
 *
 * Every answer checks the Host header against the loopback address the site is served on, so a
 * page of another origin cannot reach it by rebinding a DNS name to 127.0.0.1.
 */

export type PageKind = 'node' | 'cluster' | 'lab'

export interface SiteSource {
  /** The current state, as JSON-able data (bigints allowed). */
  snapshot: () => Promise<unknown>
}

export interface SiteAction {
  /** Runs the action; its answer goes back as JSON. */
  run: (body: Record<string, unknown>) => Promise<unknown>
}

export interface SiteOptions {
  kind: PageKind
  title: string
  prefix: string
  source: SiteSource
  actions?: Record<string, SiteAction>
  logger: Logger
  /** The cookie's name; per port, because browsers share cookies of one host across ports. */
  cookieName: string
  /** How often the source is read while a page is open (changes the source does not announce). */
  pollMs?: number
  maxStreams?: number
  /** Where app.js and app.css are; default: next to this module (dist/daemon/dashboard/client). */
  bundleDir?: string
  sessions?: DashboardSessions
  /** Further pages under PREFIX/NAME (session): self-contained HTML, or null while there is none. */
  documents?: Record<string, () => string | null>
}

const DEFAULT_POLL_MS = 250
const PING_MS = 2_000
const DEFAULT_MAX_STREAMS = 16
const MAX_ACTION_BODY_BYTES = 16 * 1024
const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8'
}

export class DashboardSite {
  readonly sessions: DashboardSessions
  private readonly streams = new Set<ServerResponse>()
  private readonly assets = new Map<string, Buffer>()
  /** A broken source would fail every poll: one line per 10 s per kind of failure. */
  private readonly log: LogLimiter
  private lastText = ''
  private timer: NodeJS.Timeout | undefined
  private pingTimer: NodeJS.Timeout | undefined
  private reading: Promise<void> | undefined
  private again = false
  /** The loopback host:port the site answers to (set once the server listens). */
  private origin: string | undefined

  constructor(private readonly options: SiteOptions) {
    assert(options.prefix.startsWith('/') && !options.prefix.endsWith('/'))
    this.sessions = options.sessions ?? new DashboardSessions()
    this.log = new LogLimiter(options.logger, 10_000)
  }

  /** The port the page is served on: the Host header must name it (with a loopback host). */
  listeningOn(port: number): void {
    this.origin = String(port)
  }

  get prefixPath(): string {
    return this.options.prefix
  }

  /** Whether `pathname` belongs to this site. */
  owns(pathname: string): boolean {
    return pathname === this.options.prefix || pathname.startsWith(this.options.prefix + '/')
  }

  /** The one-time link a browser opens, for the given base (`http://127.0.0.1:PORT`). */
  link(base: string): string {
    return `${base}${this.options.prefix}/login?token=${this.sessions.newLink()}`
  }

  /** Something changed: read the source now rather than at the next poll. */
  poke(): void {
    if (this.streams.size > 0) this.refresh()
  }

  /** Ends every open stream (the server is going down). */
  stop(): void {
    this.idle()
    for (const res of this.streams) res.end()
    this.streams.clear()
  }

  /** No page is open: no more polling. */
  private idle(): void {
    clearInterval(this.timer)
    clearInterval(this.pingTimer)
    this.timer = undefined
    this.pingTimer = undefined
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const { prefix } = this.options
    res.setHeader('x-content-type-options', 'nosniff')
    res.setHeader('referrer-policy', 'no-referrer')
    res.setHeader('cache-control', 'no-store')
    if (!this.hostAllowed(req.headers.host)) {
      this.text(res, 403, 'this page answers only to a loopback address (127.0.0.1, localhost or [::1])')
      return
    }
    const rest = url.pathname.slice(prefix.length)
    try {
      if (req.method === 'GET' && rest === '/login') {
        this.login(url, res)
        return
      }
      if (req.method === 'GET' && rest.startsWith('/') && ASSETS[rest.slice(1)] !== undefined) {
        this.asset(rest.slice(1), res)
        return
      }
      if (req.method === 'GET' && rest === '') {
        res.writeHead(303, { location: prefix + '/' })
        res.end()
        return
      }
      const session = this.sessions.check(readCookie(req.headers.cookie, this.options.cookieName))
      if (session === null) {
        this.text(
          res,
          401,
          `no session: open the one-time link that \`poolboard dashboard\` prints (${this.options.title})`
        )
        return
      }
      if (req.method === 'GET' && rest === '/') {
        this.page(res, session.csrf)
        return
      }
      if (req.method === 'GET' && rest === '/snapshot') {
        this.json(res, 200, await this.options.source.snapshot())
        return
      }
      if (req.method === 'GET' && rest === '/events') {
        this.stream(res)
        return
      }
      const document =
        req.method === 'GET' && Object.hasOwn(this.options.documents ?? {}, rest.slice(1))
          ? this.options.documents![rest.slice(1)]
          : undefined
      if (document !== undefined) {
        this.document(res, document())
        return
      }
      if (req.method === 'POST' && rest.startsWith('/action/')) {
        await this.action(rest.slice('/action/'.length), req, res, session.csrf)
        return
      }
      this.text(res, 404, `no page ${req.method ?? ''} ${url.pathname}`)
    } catch (err) {
      this.log.log('warn', 'request', { err, path: url.pathname }, 'dashboard request failed')
      if (!res.headersSent) this.json(res, 500, { error: { code: 'internal', message: (err as Error).message } })
      else res.end()
    }
  }

  private hostAllowed(host: string | undefined): boolean {
    if (host === undefined) return false
    const m = /^(127\.0\.0\.1|localhost|\[::1\]):(\d+)$/.exec(host)
    return m !== null && (this.origin === undefined || m[2] === this.origin)
  }

  private login(url: URL, res: ServerResponse): void {
    const token = url.searchParams.get('token') ?? ''
    const id = token.length > 0 && token.length <= 128 ? this.sessions.redeem(token) : null
    if (id === null) {
      this.text(res, 401, 'this link is used or expired: run `poolboard dashboard` again for a new one')
      return
    }
    res.writeHead(303, {
      location: this.options.prefix + '/',
      'set-cookie': `${this.options.cookieName}=${id}; HttpOnly; SameSite=Strict; Path=${this.options.prefix}`
    })
    res.end()
  }

  private asset(name: string, res: ServerResponse): void {
    let bytes = this.assets.get(name)
    if (bytes === undefined) {
      const dir = this.options.bundleDir ?? fileURLToPath(new URL('./client/', import.meta.url))
      try {
        bytes = readFileSync(`${dir}/${name}`)
      } catch {
        this.text(res, 500, `the dashboard bundle ${name} is missing from ${dir}: run npm run build`)
        return
      }
      this.assets.set(name, bytes)
    }
    res.writeHead(200, { 'content-type': ASSETS[name] })
    res.end(bytes)
  }

  private page(res: ServerResponse, csrf: string): void {
    const { kind, title } = this.options
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      // uPlot sizes its canvas with inline styles; nothing else runs but the bundle.
      'content-security-policy':
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    })
    res.end(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="poolboard-csrf" content="${csrf}">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
</head>
<body data-page="${kind}">
<div id="app"><p class="loading">connecting…</p></div>
<script type="module" src="app.js"></script>
</body>
</html>
`)
  }

  private document(res: ServerResponse, html: string | null): void {
    if (html === null) {
      this.text(res, 404, 'not there yet')
      return
    }
    // Self-contained pages (the lab's report): inline styles, no script at all.
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
    })
    res.end(html)
  }

  private stream(res: ServerResponse): void {
    if (this.streams.size >= (this.options.maxStreams ?? DEFAULT_MAX_STREAMS)) {
      this.text(res, 503, `more than ${this.options.maxStreams ?? DEFAULT_MAX_STREAMS} pages are open`)
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' })
    res.write('retry: 1000\n\n')
    this.streams.add(res)
    res.on('close', () => {
      this.streams.delete(res)
      if (this.streams.size === 0) this.idle()
    })
    // A new page needs the current state even if it did not change.
    this.lastText = ''
    this.refresh()
    this.timer ??= setInterval(() => {
      this.refresh()
    }, this.options.pollMs ?? DEFAULT_POLL_MS)
    this.pingTimer ??= setInterval(() => {
      this.send('ping', String(Date.now()))
    }, PING_MS)
  }

  /** Reads the source (one read at a time; a poke during a read reads again after it). */
  private refresh(): void {
    if (this.reading !== undefined) {
      this.again = true
      return
    }
    this.reading = (async () => {
      try {
        const text = JSON.stringify(await this.options.source.snapshot(), jsonReplacer)
        if (text !== this.lastText) {
          this.lastText = text
          this.send('snapshot', text)
        }
      } catch (err) {
        this.log.log('warn', 'snapshot', { err }, 'dashboard snapshot failed')
      }
    })().finally(() => {
      this.reading = undefined
      if (this.again) {
        this.again = false
        this.refresh()
      }
    })
  }

  private send(event: string, data: string): void {
    for (const res of this.streams) res.write(`event: ${event}\ndata: ${data}\n\n`)
  }

  private async action(name: string, req: IncomingMessage, res: ServerResponse, csrf: string): Promise<void> {
    const action = Object.hasOwn(this.options.actions ?? {}, name) ? this.options.actions![name] : undefined
    if (action === undefined) {
      this.json(res, 404, { error: { code: 'not-found', message: `no action ${name}` } })
      return
    }
    const given = req.headers['x-csrf-token']
    const origin = req.headers.origin
    if (
      typeof given !== 'string' ||
      !sameText(given, csrf) ||
      (origin !== undefined && !this.hostAllowed(origin.replace(/^http:\/\//, '')))
    ) {
      this.json(res, 403, { error: { code: 'csrf', message: 'missing or wrong X-CSRF-Token, or a foreign Origin' } })
      return
    }
    const chunks: Buffer[] = []
    let bytes = 0
    for await (const chunk of req) {
      bytes += (chunk as Buffer).length
      if (bytes > MAX_ACTION_BODY_BYTES) {
        this.json(res, 413, { error: { code: 'body-too-large', message: `body over ${MAX_ACTION_BODY_BYTES} bytes` } })
        return
      }
      chunks.push(chunk as Buffer)
    }
    let body: unknown = {}
    try {
      if (bytes > 0) body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      this.json(res, 400, { error: { code: 'bad-json', message: 'body is not JSON' } })
      return
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      this.json(res, 400, { error: { code: 'bad-request', message: 'expected a JSON object' } })
      return
    }
    try {
      this.json(res, 200, await action.run(body as Record<string, unknown>))
    } catch (err) {
      this.json(res, 409, { error: { code: 'failed', message: (err as Error).message } })
    }
    this.poke()
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body, jsonReplacer) + '\n')
  }

  private text(res: ServerResponse, status: number, message: string): void {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' })
    res.end(message + '\n')
  }
}

/** The value of cookie `name` in a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** Serves `sites` on their own loopback server (a cluster's page, the lab's watch page). */
export async function serveSites(
  sites: DashboardSite[],
  port: number
): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname
    const site = sites.find((s) => s.owns(pathname))
    if (site === undefined) {
      res.writeHead(
        pathname === '/' ? 303 : 404,
        pathname === '/' ? { location: sites[0].prefixPath + '/' } : { 'content-type': 'text/plain' }
      )
      res.end(pathname === '/' ? '' : 'not found\n')
      return
    }
    void site.handle(req, res)
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 0 // event streams stay open
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as AddressInfo).port
  for (const s of sites) s.listeningOn(bound)
  return {
    port: bound,
    close: async () => {
      for (const s of sites) s.stop()
      server.closeAllConnections()
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve()
        })
      })
    }
  }
}
