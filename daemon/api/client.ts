import { formatHostPort, type HostPort } from '../host/config.js'
import type { DataDir } from '../host/datadir.js'
import { EXIT, UserError } from '../host/errors.js'

const DEFAULT_TIMEOUT_MS = 10_000

/** An answer from the admin API that was an error; `body` holds the node's JSON error. */
export class ApiCallError extends UserError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly body: Record<string, unknown>
  ) {
    super(message, exitCodeOf(status, code, body), code)
    this.name = 'ApiCallError'
  }
}

/** The CLI's exit code (docs/operations.md) for an error answer of the admin API. */
export function exitCodeOf(status: number, code: string, body: Record<string, unknown>): number {
  if (code === 'unreachable' || code === 'no-leader' || code === 'not-leader' || code === 'not-running')
    return EXIT.unreachable
  if (code === 'timeout' || status === 504) return EXIT.timeout
  // A round that failed only because members did not answer in time timed out; one with refusals was refused.
  if (code === 'round-failed')
    return Array.isArray(body.refusals) && body.refusals.length > 0 ? EXIT.refused : EXIT.timeout
  if (status === 400 || status === 404 || status === 403 || status === 413) return EXIT.usage
  if (status === 409) return EXIT.refused
  if (status === 503) return EXIT.unreachable
  return EXIT.error
}

/** Talks to a running node's admin API with the credential from its data directory's cookie. */
export class AdminClient {
  private readonly authorization: string

  constructor(
    readonly api: HostPort,
    cookie: string
  ) {
    this.authorization = 'Basic ' + Buffer.from(cookie).toString('base64')
  }

  static fromDataDir(dir: DataDir): AdminClient {
    const config = dir.readConfig()
    return new AdminClient(config.api, dir.readCookie())
  }

  async get<T>(path: string, options: { timeoutMs?: number } = {}): Promise<T> {
    return await this.call<T>('GET', path, undefined, options.timeoutMs)
  }

  async post<T>(path: string, body: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    return await this.call<T>('POST', path, body, options.timeoutMs)
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    timeoutMs = DEFAULT_TIMEOUT_MS
  ): Promise<T> {
    const where = formatHostPort(this.api)
    let response: Response
    try {
      response = await fetch(`http://${where}${path}`, {
        method,
        headers: { authorization: this.authorization, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs)
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if (cause?.code === 'ECONNREFUSED')
        throw new UserError(`no node answers at ${where} (is it running?)`, EXIT.unreachable, 'not-running')
      if ((err as Error).name === 'TimeoutError')
        throw new UserError(
          `the node at ${where} did not answer ${method} ${path} within ${timeoutMs} ms`,
          EXIT.timeout,
          'timeout'
        )
      throw new UserError(
        `cannot reach the node at ${where}: ${(err as Error).message}`,
        EXIT.unreachable,
        'unreachable'
      )
    }
    const text = await response.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new UserError(`the node at ${where} answered ${response.status} with something that is not JSON`)
    }
    if (!response.ok) {
      const error = (json as { error?: Record<string, unknown> }).error ?? {}
      const code = typeof error.code === 'string' ? error.code : 'error'
      const message = typeof error.message === 'string' ? error.message : `HTTP ${response.status}`
      throw new ApiCallError(response.status, code, message, error)
    }
    return json as T
  }
}
