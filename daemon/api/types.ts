/**
 * The shapes of the admin API's answers, as the node builds them (sats as bigints). A client reads
 * `Json<T>` of them (bigints become JSON numbers): the CLI imports these instead of declaring
 * each shape again.
 */

export type { Json } from './server.js'
export type { BoardStatusView, NamedMember } from './board-routes.js'
export type {
  CreateResult,
  EvidenceResult,
  EvidenceView,
  KickResult,
  MembersResult,
  PartitionResult,
  PayResult,
  PendingRoundView,
  PoolStatus,
  RefusalView,
  StatementSummary
} from '../pool/results.js'
export type { ChainStatus, MineResult } from '../pool/simulated-chain.js'
export type { DefenseStatus } from '../defense/index.js'

/** GET /v1/status */
export interface NodeStatus {
  name: string
  version: string
  pid: number
  datadir: string
  peerId: string
  memberKey: string
  listenAddresses: string[]
  api: string
  connectedPeers: Array<{ name: string; peerId: string }>
  connectedPeerCount: number
  memberCount: number
  uptimeSeconds: number
  lab: boolean
  /** Lab mode: this node plays a coalition member (daemon/lab/node/coalition.ts). */
  labCoalition: boolean
  cut: boolean
  /** This member in the pool, as this node has applied it (null before the genesis or once kicked out). */
  pool: { poolId: string | null; poolLabel: string | null; balanceSats: bigint | null; chainHeight: number }
  board: {
    role: string
    term: number
    leader: { name: string | null; peerId: string } | null
    commit: number
    applied: number
  }
  /** What went wrong that an operator should look at: board alarms, defense detections. */
  alarms: { board: number; defense: number }
}
