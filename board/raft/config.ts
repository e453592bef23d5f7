// Configuration of the Raft core, its defaults and their validation.

import { MAX_NODE_ID_BYTES } from './confchange.js'
import type { NodeId, VoteAuthority } from './types.js'

/** Injected randomness: an integer in [0, n). */
export type RandomInt = (n: number) => number

export interface RaftConfig {
  /** This node's id. */
  readonly id: NodeId
  /** Source of randomness for election timeouts. Required: the core never calls Math.random. */
  readonly rand: RandomInt
  /**
   * A follower that hears nothing from a leader for a random timeout in
   * [electionTicks, 2 * electionTicks) ticks starts an election. Also the leader lease and the
   * check-quorum period. Default 10.
   */
  readonly electionTicks?: number
  /** The leader sends heartbeats every heartbeatTicks ticks. Must be < electionTicks. Default 1. */
  readonly heartbeatTicks?: number
  /**
   * Heartbeats to learners go out every this many ticks (rounded up to a whole number of voter
   * heartbeats): a learner neither votes nor campaigns, so it needs them only to keep knowing its
   * leader (it forgets one it has not heard for electionTicks) and to learn the commit index when
   * nothing is appended. At least heartbeatTicks, less than electionTicks. Default heartbeatTicks.
   */
  readonly learnerHeartbeatTicks?: number
  /** Run a pre-vote round before bumping the term, so a rejoining node cannot disrupt a healthy leader. Default true. */
  readonly preVote?: boolean
  /**
   * A leader that does not hear from a quorum within electionTicks steps down, and a follower that
   * heard from its leader within electionTicks ignores (pre-)vote requests. Default true.
   */
  readonly checkQuorum?: boolean
  /**
   * Compare entry hashes, not only terms, when checking a leader's entries against the local log
   * (see board/raft/log.ts). Lets a follower detect a leader that rewrote an entry keeping its
   * index and term. Default true.
   */
  readonly verifyHashChain?: boolean
  /**
   * A message whose term is more than this above ours is refused (and raised as an alarm against
   * its sender), unless it is a leader's message proven by an election certificate or this node
   * has never seen a term. Terms rise by one per election, so no honest member is that far ahead.
   * Default 1,000,000.
   */
  readonly maxTermAdvance?: number
  /** Upper bound of the entry bytes in one append message (at least one entry is always sent). Default 1 MiB. */
  readonly maxMessageBytes?: number
  /** Append messages in flight per follower in replicate state. Default 256. */
  readonly maxInflightMsgs?: number
  /** Entry bytes in flight per follower in replicate state. Default 32 MiB. */
  readonly maxInflightBytes?: number
  /** Payload bytes the leader may hold uncommitted before refusing proposals. Default 64 MiB. */
  readonly maxUncommittedBytes?: number
  /** Largest payload of a single proposal. Default 1 MiB. */
  readonly maxEntryBytes?: number
  /** Upper bound of the entry bytes handed out in one Ready for applying (at least one entry). Default 16 MiB. */
  readonly maxCommittedBytesPerReady?: number
  /** Read-index requests the leader queues at most (pending plus waiting for confirmation). Default 4096. */
  readonly maxPendingReads?: number
  /** A follower in snapshot state that has not acknowledged the snapshot after this many ticks is probed again (the snapshot may have been lost). Default 100. */
  readonly snapshotTimeoutTicks?: number
  /**
   * Signs this node's votes and checks other members' (member keys). With it, a leader proves its
   * term with an election certificate and followers adopt a term from a leader only with one.
   * Default null: plain Raft.
   */
  readonly votes?: VoteAuthority | null
  /**
   * Voters that may lie (f, docs/raft.md "A member that lies"). With f > 0 every quorum has
   * floor((n + f) / 2) + 1 of the n voters, so two quorums share an honest voter; acknowledgements
   * are signed, and a follower commits and applies only what a commit certificate proves. Needs
   * `votes` with signAck and verifyAck. Default 0: plain majorities.
   */
  readonly faultyVoters?: number
}

export type ResolvedRaftConfig = Required<RaftConfig>

export const RAFT_CONFIG_DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  learnerHeartbeatTicks: 0,
  preVote: true,
  checkQuorum: true,
  verifyHashChain: true,
  maxMessageBytes: 1 << 20,
  maxInflightMsgs: 256,
  maxInflightBytes: 32 << 20,
  maxUncommittedBytes: 64 << 20,
  maxEntryBytes: 1 << 20,
  maxCommittedBytesPerReady: 16 << 20,
  maxPendingReads: 4096,
  snapshotTimeoutTicks: 100,
  maxTermAdvance: 1_000_000,
  votes: null,
  faultyVoters: 0
} as const

export class RaftConfigError extends Error {
  constructor(
    readonly key: string,
    message: string
  ) {
    super(`invalid raft config: ${key}: ${message}`)
    this.name = 'RaftConfigError'
  }
}

function positiveInt(key: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new RaftConfigError(key, `must be a positive integer, got ${v}`)
}

/** Fills in defaults and validates; throws RaftConfigError naming the offending key. */
export function resolveConfig(c: RaftConfig): ResolvedRaftConfig {
  if (typeof c.id !== 'string' || c.id.length === 0) throw new RaftConfigError('id', 'must be a non-empty string')
  if (new TextEncoder().encode(c.id).length > MAX_NODE_ID_BYTES) {
    throw new RaftConfigError('id', `must be at most ${MAX_NODE_ID_BYTES} bytes`)
  }
  if (typeof c.rand !== 'function') throw new RaftConfigError('rand', 'must be a function (n) => integer in [0, n)')
  const merged: ResolvedRaftConfig = { ...RAFT_CONFIG_DEFAULTS, ...stripUndefined(c) } as ResolvedRaftConfig
  // 0 stands for "as often as voters" (the default).
  const r: ResolvedRaftConfig =
    merged.learnerHeartbeatTicks === 0 ? { ...merged, learnerHeartbeatTicks: merged.heartbeatTicks } : merged
  for (const key of [
    'electionTicks',
    'heartbeatTicks',
    'maxMessageBytes',
    'maxInflightMsgs',
    'maxInflightBytes',
    'maxUncommittedBytes',
    'maxEntryBytes',
    'maxCommittedBytesPerReady',
    'maxPendingReads',
    'snapshotTimeoutTicks',
    'maxTermAdvance'
  ] as const) {
    positiveInt(key, r[key])
  }
  if (!Number.isSafeInteger(r.faultyVoters) || r.faultyVoters < 0)
    throw new RaftConfigError('faultyVoters', `must be a non-negative integer, got ${r.faultyVoters}`)
  if (r.faultyVoters > 0 && (r.votes?.signAck === undefined || r.votes.verifyAck === undefined))
    throw new RaftConfigError('faultyVoters', 'needs votes that sign and verify acknowledgements')
  if (r.heartbeatTicks >= r.electionTicks) {
    throw new RaftConfigError(
      'heartbeatTicks',
      `must be less than electionTicks (${r.heartbeatTicks} >= ${r.electionTicks})`
    )
  }
  if (
    !Number.isSafeInteger(r.learnerHeartbeatTicks) ||
    r.learnerHeartbeatTicks < r.heartbeatTicks ||
    r.learnerHeartbeatTicks >= r.electionTicks
  ) {
    throw new RaftConfigError(
      'learnerHeartbeatTicks',
      `must be an integer within heartbeatTicks..electionTicks - 1 (${r.heartbeatTicks}..${r.electionTicks - 1}), got ${r.learnerHeartbeatTicks}`
    )
  }
  if (r.electionTicks < 2) throw new RaftConfigError('electionTicks', 'must be at least 2')
  if (r.maxInflightBytes < r.maxMessageBytes) {
    throw new RaftConfigError('maxInflightBytes', `must be at least maxMessageBytes (${r.maxMessageBytes})`)
  }
  for (const key of ['preVote', 'checkQuorum', 'verifyHashChain'] as const) {
    if (typeof r[key] !== 'boolean') throw new RaftConfigError(key, 'must be a boolean')
  }
  return r
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
