import assert from 'node:assert'
import { randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Browser sessions of a dashboard. A client that holds the node's cookie credential asks for a
 * one-time link token; the browser trades it once for a session id in an HttpOnly, SameSite=Strict
 * cookie. So the `.cookie` secret never reaches a URL, and a link that leaked into a history or a
 * log is worthless once used or after `linkTtlMs`.
 */

export interface SessionLimits {
  linkTtlMs: number
  sessionTtlMs: number
  maxLinks: number
  maxSessions: number
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  linkTtlMs: 120_000,
  sessionTtlMs: 12 * 3600_000,
  maxLinks: 16,
  maxSessions: 32
}

const TOKEN_BYTES = 32

export class DashboardSessions {
  /** Token → expiry (ms since the epoch). */
  private readonly links = new Map<string, number>()
  /** Session id → { expiry, CSRF token for the page's POSTs }. */
  private readonly sessions = new Map<string, { expiresAtMs: number; csrf: string }>()

  constructor(
    private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    private readonly nowMs: () => number = Date.now
  ) {
    assert(limits.maxLinks > 0 && limits.maxSessions > 0)
  }

  /** A fresh one-time link token; the oldest is forgotten beyond `maxLinks`. */
  newLink(): string {
    this.expire()
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    this.links.set(token, this.nowMs() + this.limits.linkTtlMs)
    while (this.links.size > this.limits.maxLinks) this.links.delete(this.links.keys().next().value as string)
    return token
  }

  /** Trades a link token for a session id; null if the token is unknown, used or expired. */
  redeem(token: string): string | null {
    this.expire()
    let found: string | undefined
    for (const known of this.links.keys()) if (sameText(known, token)) found = known
    if (found === undefined) return null
    this.links.delete(found)
    const id = randomBytes(TOKEN_BYTES).toString('base64url')
    this.sessions.set(id, {
      expiresAtMs: this.nowMs() + this.limits.sessionTtlMs,
      csrf: randomBytes(TOKEN_BYTES).toString('base64url')
    })
    while (this.sessions.size > this.limits.maxSessions)
      this.sessions.delete(this.sessions.keys().next().value as string)
    return id
  }

  /** The session's CSRF token if `id` is a live session, else null. */
  check(id: string | undefined): { csrf: string } | null {
    if (id === undefined) return null
    this.expire()
    for (const [known, s] of this.sessions) if (sameText(known, id)) return { csrf: s.csrf }
    return null
  }

  private expire(): void {
    const now = this.nowMs()
    for (const [k, at] of this.links) if (at <= now) this.links.delete(k)
    for (const [k, s] of this.sessions) if (s.expiresAtMs <= now) this.sessions.delete(k)
  }
}

/** Constant-time comparison of two secrets (lengths may differ). */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
