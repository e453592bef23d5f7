import { toHex } from '../../protocol/bytes.js'
import { ApiError, type Route } from './server.js'
import { chainRoutes } from '../pool/chain.js'
import type { PoolService } from '../pool/service.js'
import { PoolError, type PoolErrorCode } from '../pool/propose.js'

/**
 * The pool's admin API routes:
 *
 *     GET  /v1/pool/status[?fresh=1]          pool id, states, balances by member name, partitions, pending rounds
 *                                             (fresh: after a linearizable read of the board)
 *     GET  /v1/pool/members                   names, peer ids and member keys known
 *     GET  /v1/pool/evidence                  equivocation evidence on the board
 *     POST /v1/pool/create    {"balanceSats","kickoutDelayBlocks","timeoutMs"}
 *     POST /v1/pool/pay       {"to","amountSats","timeoutMs"}
 *     POST /v1/pool/partition {"with":[...],"pay":[{"to","amountSats"}],"timeoutMs"}
 *     POST /v1/pool/kick      {"member"}
 *     POST /v1/pool/merge     {"pool","timeoutMs"}             (pool: "root" by default, or a partition's statement id)
 *     POST /v1/lab/equivocate {"with":[...],"timeoutMs"}   (lab mode only)
 *     GET  /v1/chain/status, POST /v1/chain/mine {"blocks"}
 *
 * Amounts may be JSON numbers or decimal strings (whole sats).
 */

const STATUS_OF: Record<PoolErrorCode, number> = {
  'bad-request': 400,
  'unknown-member': 404,
  'no-pool': 409,
  exists: 409,
  'not-member': 409,
  frozen: 409,
  closed: 409,
  'round-failed': 409,
  refused: 409,
  rejected: 409,
  timeout: 504,
  'lab-only': 403,
  busy: 503,
  'no-leader': 503
}

/** How long `pool status` waits for a linearizable read before showing what this node has. */
const FRESH_READ_TIMEOUT_MS = 3_000

export function toApiError (err: unknown): never {
  if (err instanceof PoolError) throw new ApiError(STATUS_OF[err.code], err.code, err.message, err.details)
  throw err
}

export function poolRoutes (options: { pool: PoolService, blockIntervalS: number }): Route[] {
  const { pool } = options
  const guarded = (handler: Route['handler']): Route['handler'] => async (request) => {
    try {
      return await handler(request)
    } catch (err) {
      return toApiError(err)
    }
  }
  return [
    { method: 'GET', path: '/v1/pool/status', handler: async ({ query }) => query.get('fresh') === '1' ? await pool.freshStatus(FRESH_READ_TIMEOUT_MS) : pool.status() },
    { method: 'GET', path: '/v1/pool/members', handler: async () => ({ members: pool.members.list().map((m) => ({ name: m.name, peerId: m.peerId, key: m.key === null ? null : toHex(m.key) })) }) },
    { method: 'GET', path: '/v1/pool/evidence', handler: async () => ({ evidence: pool.evidenceList() }) },
    {
      method: 'POST',
      path: '/v1/pool/create',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await pool.create({
          balanceSats: b.balanceSats === undefined ? undefined : sats(b.balanceSats, 'balanceSats', true),
          kickoutDelayBlocks: b.kickoutDelayBlocks === undefined ? undefined : integer(b.kickoutDelayBlocks, 'kickoutDelayBlocks'),
          timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs')
        })
      })
    },
    {
      method: 'POST',
      path: '/v1/pool/pay',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await pool.pay({ to: text(b.to, 'to'), amountSats: sats(b.amountSats, 'amountSats'), timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs') })
      })
    },
    {
      method: 'POST',
      path: '/v1/pool/partition',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await pool.partition({ with: names(b.with, 'with'), pay: payments(b.pay), timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs') })
      })
    },
    {
      method: 'POST',
      path: '/v1/pool/kick',
      handler: guarded(async ({ body }) => await pool.kick({ member: text(object(body).member, 'member') }))
    },
    {
      method: 'POST',
      path: '/v1/pool/merge',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await pool.merge({ pool: b.pool === undefined ? undefined : text(b.pool, 'pool'), timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs') })
      })
    },
    {
      method: 'POST',
      path: '/v1/lab/equivocate',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await pool.equivocate({ with: names(b.with, 'with'), timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs') })
      })
    },
    ...chainRoutes({ poolBoard: pool.entries.poolBoard, entries: pool.entries, blockIntervalS: options.blockIntervalS, toApiError })
  ]
}

function object (body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'bad-request', 'expected a JSON object')
  return body as Record<string, unknown>
}

function text (v: unknown, name: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new ApiError(400, 'bad-request', `${name}: expected a member name`)
  return v
}

function names (v: unknown, name: string): string[] {
  const list = typeof v === 'string' ? v.split(',') : v
  if (!Array.isArray(list) || list.length === 0 || list.length > 256 || !list.every((x) => typeof x === 'string' && x.trim() !== '')) {
    throw new ApiError(400, 'bad-request', `${name}: expected a list of member names`)
  }
  return list.map((x: string) => x.trim())
}

function integer (v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ApiError(400, 'bad-request', `${name}: expected a whole number, got ${JSON.stringify(v)}`)
  return v
}

function optionalInteger (v: unknown, name: string): number | undefined {
  return v === undefined ? undefined : integer(v, name)
}

function sats (v: unknown, name: string, allowZero = false): bigint {
  const ok = (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && /^\d{1,16}$/.test(v))
  if (!ok) throw new ApiError(400, 'bad-request', `${name}: expected a whole number of sats, got ${JSON.stringify(v)}`)
  const n = BigInt(v as number | string)
  if (n < (allowZero ? 0n : 1n)) throw new ApiError(400, 'bad-request', `${name}: expected ${allowZero ? 'at least 0' : 'a positive number of'} sats, got ${n}`)
  return n
}

function payments (v: unknown): Array<{ to: string, amountSats: bigint }> {
  if (v === undefined) return []
  if (!Array.isArray(v) || v.length > 256) throw new ApiError(400, 'bad-request', 'pay: expected a list of {"to","amountSats"}')
  return v.map((p: unknown, i) => {
    const o = object(p)
    return { to: text(o.to, `pay[${i}].to`), amountSats: sats(o.amountSats, `pay[${i}].amountSats`) }
  })
}
