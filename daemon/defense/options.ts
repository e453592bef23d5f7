import type { PoolBoard } from '../../board/pool-board.js'
import type { PartitionStatement } from '../../protocol/statement.js'
import type { NodeConfig } from '../host/config.js'
import type { Logger } from '../host/log.js'
import type { MemberRpc } from '../net/rpc.js'
import type { Alarm } from '../../board/raft/index.js'
import type { Events } from '../host/events.js'
import type { BoardReplica } from '../replica/board.js'
import type { AppliedEvents } from '../replica/pool-applier.js'
import type { DefenseLog } from './log.js'

// What the defenses are built with: the node's parts (DefensesOptions), and what each defense
// module gets on top (DefensePartOptions).

export interface DefensesOptions {
  config: NodeConfig
  selfPeerId: string
  rpc: MemberRpc
  board: Pick<BoardReplica, 'leader' | 'commit' | 'committedEntries' | 'appliedIndex'>
  poolBoard: PoolBoard
  /** Peer ids of the members this node is connected to now. */
  connectedPeerIds: () => string[]
  logger: Logger
  /** What this node applies: the quorum read remembers the entries' digests. */
  applied: AppliedEvents
  /** The board core's alarms (daemon/replica/board.ts): with the hash-chain defense, a proof for every member. */
  alarms: Events<Alarm>
}

/** What each defense module is built with. */
export interface DefensePartOptions extends DefensesOptions {
  enabled: boolean
  log: DefenseLog
  nameOf: (peerId: string) => string
  nameOfKey: (key: Uint8Array) => string
  answerDelayMs: number
  /** Checks a statement another member sent against this node's view (null: not of a state it holds as current). */
  verify: (s: PartitionStatement) => { ok: true } | { ok: false; reason: string } | null
}
