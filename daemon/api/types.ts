/**
 * The shapes of the admin API's answers, as the node builds them (sats as bigints). A client reads
 * `Json<T>` of them (bigints become JSON numbers): the CLI imports these instead of declaring
 * each shape again.
 */

export type { Json } from './server.js'
export type { BoardStatusView, NamedMember } from './board-routes.js'
export type {
  CreateResult, EvidenceResult, EvidenceView, KickResult, MembersResult, PartitionResult, PayResult, PendingRoundView,
  PoolStatus, RefusalView, StatementSummary
} from '../pool/results.js'
export type { ChainStatus, MineResult } from '../pool/simulated-chain.js'
export type { DefenseStatus } from '../defense/index.js'
