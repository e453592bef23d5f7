import { toHex } from '../../protocol/bytes.js'
import { ApiError, type Route } from './server.js'
import { chainStatus, mine } from '../pool/simulated-chain.js'
import type { EntryProposer } from '../pool/propose.js'
import type { EvidenceResult, MembersResult } from '../pool/results.js'
import type { PoolBoard } from '../../board/pool-board.js'
import type { PoolService } from '../pool/service.js'
import { PoolError, type PoolErrorCode } from '../pool/propose.js'
import type { NodeMetrics, RoundKind } from '../host/metrics.js'
import { integer, names, object, optionalInteger, payments, sats, text } from './body.js'

/**
 * The pool's admin API routes:
 *
 *     GET  /v1/pool/status[?fresh=1]          pool id, states, balances by member name, partitions, pending rounds,
 *                                             signatures of this member that never reached the board (unfinished)
 *                                             (fresh: after a linearizable read of the board)
 *     GET  /v1/pool/members                   names, peer ids and member keys known
 *     GET  /v1/pool/evidence                  equivocation evidence on the board
 *     POST /v1/pool/create    {"balanceSats","kickoutDelayBlocks","timeoutMs"}
 *     POST /v1/pool/pay       {"to","amountSats","timeoutMs"}
 *     POST /v1/pool/partition {"with":[...],"pay":[{"to","amountSats"}],"timeoutMs"}
 *     POST /v1/pool/kick      {"member"}
 *     POST /v1/pool/merge     {"pool","timeoutMs"}             (pool: "root" by default, or a partition's statement id)
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
  'no-leader': 503,
  unreachable: 503
}

/** How long `pool status` waits for a linearizable read before showing what this node has. */
const FRESH_READ_TIMEOUT_MS = 3_000

export function toApiError(err: unknown): never {
  if (err instanceof PoolError) throw new ApiError(STATUS_OF[err.code], err.code, err.message, err.details)
  throw err
}

/** A route handler whose PoolError becomes the API error of its code. */
export function guarded(handler: Route['handler']): Route['handler'] {
  return async (request) => {
    try {
      return await handler(request)
    } catch (err) {
      return toApiError(err)
    }
  }
}

export function poolRoutes(options: { pool: PoolService; blockIntervalS: number; metrics?: NodeMetrics }): Route[] {
  const { pool } = options
  const timed = async <T>(kind: RoundKind, work: () => Promise<T>): Promise<T> =>
    options.metrics === undefined ? await work() : await options.metrics.timeRound(kind, work)
  return [
    {
      method: 'GET',
      path: '/v1/pool/status',
      handler: async ({ query }) => ({
        ...(query.get('fresh') === '1' ? await pool.freshStatus(FRESH_READ_TIMEOUT_MS) : pool.status()),
        unfinished: await pool.unfinished()
      })
    },
    {
      method: 'GET',
      path: '/v1/pool/members',
      handler: async (): Promise<MembersResult> => ({
        members: pool.members
          .list()
          .map((m) => ({ name: m.name, peerId: m.peerId, key: m.key === null ? null : toHex(m.key) }))
      })
    },
    {
      method: 'GET',
      path: '/v1/pool/evidence',
      handler: async (): Promise<EvidenceResult> => ({ evidence: pool.evidenceList() })
    },
    {
      method: 'POST',
      path: '/v1/pool/create',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await timed(
          'create',
          async () =>
            await pool.create({
              balanceSats: b.balanceSats === undefined ? undefined : sats(b.balanceSats, 'balanceSats', true),
              kickoutDelayBlocks:
                b.kickoutDelayBlocks === undefined ? undefined : integer(b.kickoutDelayBlocks, 'kickoutDelayBlocks'),
              timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs')
            })
        )
      })
    },
    {
      method: 'POST',
      path: '/v1/pool/pay',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        const params = {
          to: text(b.to, 'to'),
          amountSats: sats(b.amountSats, 'amountSats'),
          timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs')
        }
        return await timed('pay', async () => await pool.pay(params))
      })
    },
    {
      method: 'POST',
      path: '/v1/pool/partition',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        const params = {
          with: names(b.with, 'with'),
          pay: payments(b.pay),
          timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs')
        }
        return await timed('partition', async () => await pool.partition(params))
      })
    },
    {
      method: 'POST',
      path: '/v1/pool/kick',
      handler: guarded(async ({ body }) => {
        const params = { member: text(object(body).member, 'member') }
        return await timed('kick', async () => await pool.kick(params))
      })
    },
    {
      method: 'POST',
      path: '/v1/pool/merge',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await pool.merge({
          pool: b.pool === undefined ? undefined : text(b.pool, 'pool'),
          timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs')
        })
      })
    },
    ...chainRoutes({ poolBoard: pool.entries.poolBoard, entries: pool.entries, blockIntervalS: options.blockIntervalS })
  ]
}

/** `GET /v1/chain/status`, `POST /v1/chain/mine {"blocks": N}`. */
function chainRoutes(options: { poolBoard: PoolBoard; entries: EntryProposer; blockIntervalS: number }): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/chain/status',
      handler: async () => chainStatus(options.poolBoard, options.blockIntervalS)
    },
    {
      method: 'POST',
      path: '/v1/chain/mine',
      handler: guarded(async ({ body }) => await mine(options.entries, (body as { blocks?: unknown }).blocks))
    }
  ]
}
