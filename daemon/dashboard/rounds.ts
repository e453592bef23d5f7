import type { ApplyResult } from '../../board/pool-board.js'
import { toHex } from '../../protocol/bytes.js'
import type { Route } from '../api/server.js'
import { refId } from '../pool/view.js'

/**
 * What the dashboard shows of recent activity: the rounds this node ran through its admin API
 * (create, pay, partition, kick, equivocate) with their outcome and latency, and the board
 * entries it applied with their outcome. Both are bounded rings.
 */

export interface RoundRecord {
  /** When it started, ms since the epoch. */
  atMs: number
  kind: string
  /** The request, for people: "pay 1500 to node2". */
  what: string
  /** ok, or the error code the API answered. */
  outcome: string
  latencyMs: number
  /** The result's summary (state made, statement id) or the error message. */
  detail: string
}

export interface AppliedEntryRecord {
  atMs: number
  index: number
  kind: string
  outcome: string
  reason: string
  pool: string | null
  state: number | null
}

const ROUND_PATHS: Record<string, string> = {
  '/v1/pool/create': 'create',
  '/v1/pool/pay': 'pay',
  '/v1/pool/partition': 'partition',
  '/v1/pool/kick': 'kick',
  '/v1/lab/equivocate': 'equivocate'
}

export class ActivityLog {
  readonly rounds: RoundRecord[] = []
  readonly entries: AppliedEntryRecord[] = []

  constructor(
    private readonly onChange: () => void,
    private readonly maxRecords = 50
  ) {}

  /** `route` with its rounds recorded (other routes as they are). */
  wrap(route: Route): Route {
    const kind = route.method === 'POST' ? ROUND_PATHS[route.path] : undefined
    if (kind === undefined) return route
    return {
      ...route,
      handler: async (request) => {
        const atMs = Date.now()
        const what = describeRequest(kind, request.body)
        try {
          const result = await route.handler(request)
          this.pushRound({
            atMs,
            kind,
            what,
            outcome: 'ok',
            latencyMs: Date.now() - atMs,
            detail: describeResult(result)
          })
          return result
        } catch (err) {
          const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'error'
          this.pushRound({
            atMs,
            kind,
            what,
            outcome: code,
            latencyMs: Date.now() - atMs,
            detail: (err as Error).message
          })
          throw err
        }
      }
    }
  }

  onBoardResult(result: ApplyResult): void {
    this.push(this.entries, {
      atMs: Date.now(),
      index: result.index,
      kind: result.kind,
      outcome: result.outcome,
      reason: result.reason,
      pool: result.pool === null ? null : refId(result.pool),
      state: result.stateNumber
    })
  }

  private pushRound(r: RoundRecord): void {
    this.push(this.rounds, r)
  }

  private push<T>(list: T[], item: T): void {
    list.push(item)
    if (list.length > this.maxRecords) list.splice(0, list.length - this.maxRecords)
    this.onChange()
  }
}

function describeRequest(kind: string, body: unknown): string {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  const list = (v: unknown): string => (Array.isArray(v) ? v.join(', ') : String(v ?? ''))
  if (kind === 'pay') return `pay ${String(b.amountSats)} sats to ${String(b.to)}`
  if (kind === 'partition' || kind === 'equivocate') return `${kind} with ${list(b.with)}`
  if (kind === 'kick') return `kick ${String(b.member)}`
  return kind
}

function describeResult(result: unknown): string {
  if (typeof result !== 'object' || result === null) return ''
  const r = result as Record<string, unknown>
  const parts: string[] = []
  if (typeof r.outcome === 'string') parts.push(r.outcome)
  if (typeof r.state === 'number') parts.push(`state ${r.state}`)
  if (typeof r.statementId === 'string') parts.push(`statement ${r.statementId.slice(0, 16)}`)
  if (r.statementId instanceof Uint8Array) parts.push(`statement ${toHex(r.statementId).slice(0, 16)}`)
  if (typeof r.index === 'number') parts.push(`board index ${r.index}`)
  return parts.join(', ')
}
