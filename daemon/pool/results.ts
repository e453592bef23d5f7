import type { GossipCounters } from '../net/gossip.js'
import type { PendingRoundView } from './rounds.js'
import type { PoolStatusView } from './view.js'

/**
 * What the pool's commands and views answer (sats as bigints; a client reads them as JSON
 * numbers, `Json<T>` in daemon/api/server.ts). The admin API serves these, and the CLI reads them
 * through daemon/api/types.ts.
 */

export type { PendingRoundView, RefusalView } from './rounds.js'

/** POST /v1/pool/create */
export interface CreateResult {
  poolId: string
  index: number
  members: string[]
  balances: Record<string, bigint>
  kickoutDelayBlocks: number
  creationHeight: number
}

/** POST /v1/pool/pay */
export interface PayResult {
  pool: string
  poolLabel: string
  state: number
  index: number
  payment: { from: string; to: string; amountSats: bigint }
  balances: Record<string, bigint>
  totalSats: bigint
}

/** POST /v1/pool/partition */
export interface PartitionResult {
  statementId: string
  index: number
  pool: string
  poolLabel: string
  parent: string
  actives: string[]
  balances: Record<string, bigint>
}

/** POST /v1/pool/kick */
export interface KickResult {
  member: string
  pool: string
  poolLabel: string
  state: number
  index: number
  height: number | null
  txid: string | null
  exitSats: bigint
  continuation: string | null
  continuationLabel: string | null
}

/** GET /v1/pool/status */
export interface PoolStatus extends PoolStatusView {
  me: { name: string; key: string; pool: string | null; poolLabel: string | null }
  pending: PendingRoundView[]
  gossip: GossipCounters & { topic: string; subscribers: number }
}

/** GET /v1/pool/members */
export interface MembersResult {
  members: Array<{ name: string; peerId: string; key: string | null }>
}

export interface StatementSummary {
  statementId: string
  parent: string
  actives: string[]
  balances: Record<string, bigint>
  board: { status: string; index: number } | null
}

export interface EvidenceView {
  id: string
  member: string
  memberKey: string
  index: number
  source: string
  first: StatementSummary
  second: StatementSummary
}

/** GET /v1/pool/evidence */
export interface EvidenceResult {
  evidence: EvidenceView[]
}
