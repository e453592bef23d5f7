import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { COOKIE_USER } from '../host/datadir.js'
import type { HostPort } from '../host/config.js'
import type { Logger } from '../host/log.js'

// daemon/api/: the admin API: the HTTP server (this file), its client, the routes of the board and
// the pool, and the types of their answers (types.ts) that the CLI reads.

/** An error a handler throws to answer with a status code and a JSON body naming what was wrong. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {}
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export interface ApiRequest {
  query: URLSearchParams
  /** The parsed JSON body (POST), already size-limited. */
  body: unknown
}

export interface Route {
  method: 'GET' | 'POST'
  path: string
  /** Returns the JSON to answer with. */
  handler: (request: ApiRequest) => Promise<unknown>
}

/** Text answered as-is (Prometheus exposition format) without authentication. */
export interface PublicTextRoute {
  path: string
  contentType: string
  handler: () => Promise<string>
}

export interface AdminApiOptions {
  listen: HostPort
  /** The cookie password; the Basic credential is `__cookie__:<password>`. */
  password: string
  routes: readonly Route[]
  publicRoutes: readonly PublicTextRoute[]
  logger: Logger
  maxBodyBytes?: number
  /** Web pages that authenticate on their own (the dashboard, daemon/dashboard/site.ts). */
  pages?: { owns: (pathname: string) => boolean; handle: (req: IncomingMessage, res: ServerResponse) => Promise<void> }
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
const MAX_CONCURRENT_REQUESTS = 256

/**
 * The admin API: HTTP JSON on loopback, authenticated like bitcoind's RPC with the cookie file's
 * credential as HTTP Basic auth. Every answer is JSON; errors are `{"error":{"code","message",...}}`.
 */
export class AdminApi {
  private readonly server: Server
  private readonly expectedAuth: Buffer
  private readonly routes: Map<string, Route>
  private readonly publicRoutes: Map<string, PublicTextRoute>
  private readonly maxBodyBytes: number
  private inFlight = 0

  constructor(private readonly options: AdminApiOptions) {
    this.expectedAuth = Buffer.from('Basic ' + Buffer.from(`${COOKIE_USER}:${options.password}`).toString('base64'))
    this.routes = new Map(options.routes.map((r) => [`${r.method} ${r.path}`, r]))
    this.publicRoutes = new Map(options.publicRoutes.map((r) => [r.path, r]))
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    // No request may stop the node: whatever a handler throws, sync or async, becomes an answer.
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.answerError(res, err)
      })
    })
    this.server.headersTimeout = 10_000
    this.server.requestTimeout = 0 // long polls (an append waiting to commit) end on their own deadline
  }

  async start(): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.options.listen.port, this.options.listen.host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const address = this.server.address() as AddressInfo
    return { host: address.address, port: address.port }
  }

  /** Stops accepting, then ends open connections. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve()
      })
    })
    this.server.closeIdleConnections()
    setTimeout(() => {
      this.server.closeAllConnections()
    }, 2_000).unref()
    await closed
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://localhost')
    } catch {
      this.answer(res, 400, { error: { code: 'bad-target', message: 'the request target is not a valid path' } })
      return
    }
    if (this.options.pages?.owns(url.pathname) === true) {
      await this.options.pages.handle(req, res)
      return
    }
    const publicRoute = req.method === 'GET' ? this.publicRoutes.get(url.pathname) : undefined
    if (publicRoute !== undefined) {
      try {
        const text = await publicRoute.handler()
        res.writeHead(200, { 'content-type': publicRoute.contentType })
        res.end(text)
      } catch (err) {
        this.answerError(res, err)
      }
      return
    }
    if (!this.authorized(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Basic realm="poolboard"')
      this.answer(res, 401, {
        error: {
          code: 'unauthorized',
          message: "missing or wrong credential: use the __cookie__ credential from the data directory's .cookie file"
        }
      })
      return
    }
    const route = this.routes.get(`${req.method ?? ''} ${url.pathname}`)
    if (route === undefined) {
      const known = [...this.routes.keys()].some((k) => k.endsWith(' ' + url.pathname))
      this.answer(res, known ? 405 : 404, {
        error: {
          code: known ? 'method-not-allowed' : 'not-found',
          message: `no route ${req.method ?? ''} ${url.pathname}`
        }
      })
      return
    }
    if (this.inFlight >= MAX_CONCURRENT_REQUESTS) {
      this.answer(res, 503, {
        error: { code: 'busy', message: `more than ${MAX_CONCURRENT_REQUESTS} requests in flight` }
      })
      return
    }
    this.inFlight++
    try {
      const body = req.method === 'POST' ? await this.readJsonBody(req) : undefined
      const result = await route.handler({ query: url.searchParams, body })
      this.answer(res, 200, result)
    } catch (err) {
      this.answerError(res, err)
    } finally {
      this.inFlight--
    }
  }

  private authorized(header: string | undefined): boolean {
    if (header === undefined) return false
    const given = Buffer.from(header)
    return given.length === this.expectedAuth.length && timingSafeEqual(given, this.expectedAuth)
  }

  /** A POST body: a JSON object sent as `application/json`, or nothing (read as `{}`). */
  private async readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = []
    let bytes = 0
    try {
      for await (const chunk of req) {
        bytes += (chunk as Buffer).length
        if (bytes > this.maxBodyBytes)
          throw new ApiError(413, 'body-too-large', `request body is larger than ${this.maxBodyBytes} bytes`)
        chunks.push(chunk as Buffer)
      }
    } catch (err) {
      if (err instanceof ApiError) throw err
      // The client went away mid-body: nobody is left to answer, and it is not the node's fault.
      throw new ApiError(400, 'body-aborted', `request body ended early: ${(err as Error).message}`)
    }
    if (bytes === 0) return {}
    const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    if (contentType !== 'application/json')
      throw new ApiError(
        415,
        'unsupported-media-type',
        `request body must be application/json, not ${contentType === '' ? 'untyped' : JSON.stringify(contentType.slice(0, 64))}`
      )
    let body: unknown
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      throw new ApiError(400, 'bad-json', 'request body is not valid JSON')
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new ApiError(400, 'bad-request', 'request body must be a JSON object')
    return body as Record<string, unknown>
  }

  private answerError(res: ServerResponse, err: unknown): void {
    if (err instanceof ApiError) {
      this.answer(res, err.status, { error: { code: err.code, message: err.message, ...err.details } })
      return
    }
    this.options.logger.error({ err }, 'admin API handler failed')
    this.answer(res, 500, { error: { code: 'internal', message: err instanceof Error ? err.message : String(err) } })
  }

  private answer(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent || res.destroyed) return
    let text: string
    try {
      text = JSON.stringify(body, jsonReplacer)
    } catch (err) {
      status = 500
      text = JSON.stringify({ error: { code: 'internal', message: `answer is not JSON: ${(err as Error).message}` } })
    }
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(text + '\n')
  }
}

/** A value as a client reads it back from `jsonReplacer`'s JSON: its bigints are numbers. */
export type Json<T> = T extends bigint
  ? number
  : T extends ReadonlyArray<infer U>
    ? Array<Json<U>>
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T

/** Satoshi amounts are bigints in memory; every valid one (at most 21e14 sats) is a safe JSON number. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value !== 'bigint') return value
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value.toString()
}
