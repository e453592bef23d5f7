// Plain data types of the Raft core: log entries, persisted state, messages, Ready.
//
// Everything here is plain data (numbers, strings, booleans, Uint8Array, arrays, null) so that a
// binary codec can be written for it without knowing the core. Objects handed to the core or out
// of it are never mutated afterwards; treat them as immutable.

/** Opaque node identifier (in production, a libp2p peer id string). */
export type NodeId = string

export type EntryType = 'normal' | 'confChange'

/**
 * One log entry. `hash` chains the log: sha256 over a domain tag, the previous entry's hash (the
 * snapshot's hash for the first entry after a snapshot, 32 zero bytes for index 1), index, term,
 * type and data. See hash.ts.
 */
export interface Entry {
  readonly index: number
  readonly term: number
  readonly type: EntryType
  readonly data: Uint8Array
  readonly hash: Uint8Array
}

/** What must survive a crash besides the log: current term, vote in that term, commit index. */
export interface HardState {
  readonly term: number
  readonly vote: NodeId | null
  readonly commit: number
}

/** The membership: voters elect and form quorums; learners only receive the log. */
export interface Configuration {
  readonly voters: readonly NodeId[]
  readonly learners: readonly NodeId[]
}

/** Describes the log prefix a snapshot replaces: its last index, term and hash, and the configuration at that index. */
export interface SnapshotMeta {
  readonly index: number
  readonly term: number
  readonly hash: Uint8Array
  readonly configuration: Configuration
}

/** A snapshot: metadata plus the application's opaque state at meta.index. */
export interface Snapshot {
  readonly meta: SnapshotMeta
  readonly data: Uint8Array
}

/**
 * The durable state a node restarts from. `entries` are the log entries after the snapshot, in
 * order, contiguous from snapshot.meta.index + 1. `applied` is the index the application state
 * already reflects (default: snapshot.meta.index); committed entries after it are handed out again.
 */
export interface PersistedState {
  readonly hardState: HardState
  readonly snapshot: Snapshot
  readonly entries: readonly Entry[]
  readonly applied?: number
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader'

export interface SoftState {
  readonly role: Role
  readonly leader: NodeId | null
}

/** Answer to readIndex(context): the application may serve the read once it has applied `index`. */
export interface ReadState {
  readonly index: number
  readonly context: Uint8Array
}

/**
 * Something an honest cluster never produces. The core refuses the offending input and keeps
 * running; the driver should log the alarm with its proof and surface it to the operator.
 */
export type Alarm =
  | {
      /** A leader offered an entry that differs from one this node knows to be committed. */
      readonly kind: 'committed-entry-conflict'
      readonly index: number
      readonly localTerm: number
      readonly localHash: Uint8Array
      readonly offeredTerm: number
      readonly offeredHash: Uint8Array
      /** The node that offered it, and the term it claimed. */
      readonly from: NodeId
      readonly term: number
    }
  | {
      /** A leader sent a malformed append or snapshot (broken hash chain, bad indexes, ...). */
      readonly kind: 'invalid-append'
      readonly from: NodeId
      readonly term: number
      readonly index: number
      readonly reason: string
    }
  | {
      /**
       * A message refused before it could change anything: a term or index no honest member sends
       * (past what the codec carries, or far above ours), a leader's message in a term another
       * member leads, or a higher term without the election certificate that proves it.
       */
      readonly kind: 'refused-message'
      readonly from: NodeId
      readonly term: number
      readonly type: MessageType
      readonly reason: string
    }
  | {
      /**
       * The leader says entries up to `commit` are on this node, but its log ends at `lastIndex`:
       * this node's store lost writes it acknowledged (or the leader lies). Not held against the sender.
       */
      readonly kind: 'commit-beyond-log'
      readonly from: NodeId
      readonly term: number
      readonly commit: number
      readonly lastIndex: number
    }

/** One voter's signed vote for the leader of a term (see VoteAuthority). */
export interface SignedVote {
  readonly voter: NodeId
  readonly signature: Uint8Array
}

/**
 * Proof that `leader` won `term`: the signed votes of a quorum of the voters it was elected by
 * (a follower's configuration may differ from the leader's). A follower adopts a term
 * from a leader's message only with it, so no single member can make itself leader by saying so.
 */
export interface ElectionCertificate {
  readonly term: number
  readonly leader: NodeId
  /** The voters of the leader's configuration when it won. */
  readonly voters: readonly NodeId[]
  readonly votes: readonly SignedVote[]
}

/**
 * Signs and checks votes; injected by the driver (member keys, BIP340) so the core stays pure.
 * Without one, the core runs plain Raft: terms are taken on the sender's word.
 */
export interface VoteAuthority {
  /** This node's signature of its vote for `candidate` in `term`. */
  sign(term: number, candidate: NodeId): Uint8Array
  /** True if `voter` is a member of the pool and `signature` is its vote for `candidate` in `term`. */
  verify(voter: NodeId, term: number, candidate: NodeId, signature: Uint8Array): boolean
  /** This node's signature of an acknowledgement (see SignedAck); needed with `faultyVoters` > 0. */
  signAck?(ack: AckClaim): Uint8Array
  /** True if `voter` is a member of the pool and `signature` is its acknowledgement `ack`. */
  verifyAck?(voter: NodeId, ack: AckClaim, signature: Uint8Array): boolean
}

/**
 * What a voter's signed acknowledgement says (with `faultyVoters` > 0): in `term`, its log holds
 * the entry `index` with `hash` (so the whole chain before it), and it durably holds a commit index
 * `locked` (<= index) on that chain, which it will never truncate.
 */
export interface AckClaim {
  readonly term: number
  readonly index: number
  readonly hash: Uint8Array
  readonly locked: number
}

export interface SignedAck extends AckClaim {
  readonly voter: NodeId
  readonly signature: Uint8Array
}

/**
 * The leader's proof of what is committed (with `faultyVoters` > 0): the latest signed
 * acknowledgement of each voter in the leader's term. A follower checks each against its own log
 * and counts: an index acknowledged by a quorum is committed (and then never truncated); an index
 * a quorum holds committed may be applied.
 */
export interface CommitCertificate {
  readonly acks: readonly SignedAck[]
}

// ---------------------------------------------------------------------------------------------
// Messages. Every message carries from, to and the sender's term.

interface MessageBase {
  readonly from: NodeId
  readonly to: NodeId
  readonly term: number
}

/** Leader to follower: entries after (prevIndex, prevTerm, prevHash), and the leader's commit index. */
/** What a leader sends carries, when votes are signed, the certificate of its term. */
interface LeaderMessageBase extends MessageBase {
  readonly certificate?: ElectionCertificate
  /** With `faultyVoters` > 0: what commits (app, heartbeat, snap). */
  readonly commitCertificate?: CommitCertificate
}

export interface AppMessage extends LeaderMessageBase {
  readonly type: 'app'
  readonly prevIndex: number
  readonly prevTerm: number
  readonly prevHash: Uint8Array
  readonly entries: readonly Entry[]
  readonly commit: number
}

/**
 * Follower to leader. Accepted: the follower's log matches the leader's up to `index`.
 * Rejected: `index` is the rejected prevIndex; (hintIndex, hintTerm) is the follower's best guess
 * of where the logs may still agree (hintTerm 0 when unknown), for fast backtracking.
 */
export interface AppRespMessage extends MessageBase {
  readonly type: 'appResp'
  readonly index: number
  readonly reject: boolean
  readonly hintIndex: number
  readonly hintTerm: number
  /** Accepted, with `faultyVoters` > 0: the signed claim (this term, `index`) the leader may show. */
  readonly ack?: { readonly hash: Uint8Array; readonly locked: number; readonly signature: Uint8Array }
}

/** Candidate asks for a vote in `term`. `force` bypasses the leader lease (leadership transfer). */
export interface VoteMessage extends MessageBase {
  readonly type: 'vote' | 'preVote'
  readonly lastIndex: number
  readonly lastTerm: number
  readonly force: boolean
  /**
   * With `faultyVoters` > 0: the candidate's commit index and its hash. A voter whose log holds a
   * different entry there (above its own commit index) took it from a lying leader, and its last
   * term says nothing: it grants even if its log looks more up to date.
   */
  readonly commit?: { readonly index: number; readonly hash: Uint8Array }
}

/** For a granted pre-vote, `term` echoes the requested term rather than the voter's own term. */
export interface VoteRespMessage extends MessageBase {
  readonly type: 'voteResp' | 'preVoteResp'
  readonly reject: boolean
  /** A granted vote (not a pre-vote), signed by the voter when votes are signed. */
  readonly signature?: Uint8Array
  /**
   * Granted, with `faultyVoters` > 0: the voter's commit index and its hash, signed as an AckClaim
   * (index = locked). A candidate whose log does not hold it does not count the grant.
   */
  readonly ack?: { readonly hash: Uint8Array; readonly locked: number; readonly signature: Uint8Array }
}

/** Leader to follower: keeps leadership alive, carries min(follower's match, commit) and a read context. */
export interface HeartbeatMessage extends LeaderMessageBase {
  readonly type: 'heartbeat'
  readonly commit: number
  readonly context: Uint8Array | null
}

export interface HeartbeatRespMessage extends MessageBase {
  readonly type: 'heartbeatResp'
  readonly context: Uint8Array | null
}

/** Leader to a follower whose next entry is compacted away. Answered with an appResp. */
export interface SnapMessage extends LeaderMessageBase {
  readonly type: 'snap'
  readonly snapshot: Snapshot
}

/** Leader to the transfer target: campaign now, bypassing pre-vote and leases. */
export interface TimeoutNowMessage extends LeaderMessageBase {
  readonly type: 'timeoutNow'
}

/** Follower to leader: a forwarded readIndex request. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: 'readIndex'
  readonly context: Uint8Array
}

/** Leader to follower: the read index for a forwarded request, confirmed by a heartbeat quorum. */
export interface ReadIndexRespMessage extends MessageBase {
  readonly type: 'readIndexResp'
  readonly index: number
  readonly context: Uint8Array
}

/** Follower to leader: a forwarded transferLeadership request. */
export interface TransferLeaderMessage extends MessageBase {
  readonly type: 'transferLeader'
  readonly target: NodeId
}

export type Message =
  | AppMessage
  | AppRespMessage
  | VoteMessage
  | VoteRespMessage
  | HeartbeatMessage
  | HeartbeatRespMessage
  | SnapMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexRespMessage
  | TransferLeaderMessage

export type MessageType = Message['type']

// ---------------------------------------------------------------------------------------------

/**
 * The output of the core, fetched with ready() and acknowledged with advance().
 *
 * DURABILITY CONTRACT. A driver handles each Ready in this order:
 *   1. Persist `snapshot` (if any: store it and discard every stored log entry), then `entries`
 *      (delete every stored entry with index >= entries[0].index, then write them), then
 *      `hardState` (if any), all in ONE atomic batch, and sync it to disk (fsync). If none of
 *      the three is present, nothing needs writing.
 *   2. Only after the sync: send `messages`, restore the application from `snapshot` (if any),
 *      apply `committedEntries` in order, serve `readStates` once applied up to their index,
 *      report `alarms`.
 *   3. Call advance(ready).
 * Readies are handled one at a time, in order. step() and tick() may be called while a Ready is
 * being handled (their output goes into the next Ready); ready() may not be called again before
 * advance(). A driver that sends a message or applies an entry before the batch is synced can
 * make the cluster lose a committed entry or elect two leaders in one term.
 *
 * One exception (the leader's parallel write, Raft thesis §10.2.1): messages only a leader sends
 * ('app', 'heartbeat', 'snap', 'timeoutNow', 'readIndexResp') may go out before the sync, because
 * the leader counts its own copy of an entry only after advance(). Votes, vote and append
 * responses, heartbeat responses and forwarded requests must wait for the sync.
 */
export interface Ready {
  /** Present when role or leader changed since the previous Ready. Not persisted. */
  readonly softState: SoftState | null
  /** Present when term, vote or commit changed since the previous Ready. */
  readonly hardState: HardState | null
  /** Entries to append; they replace any stored entries from entries[0].index on. */
  readonly entries: readonly Entry[]
  /** A snapshot received from the leader, to persist and restore the application from. */
  readonly snapshot: Snapshot | null
  readonly messages: readonly Message[]
  /** Entries known committed, to apply in order (never in the same Ready as a snapshot). */
  readonly committedEntries: readonly Entry[]
  readonly readStates: readonly ReadState[]
  readonly alarms: readonly Alarm[]
  /**
   * With `faultyVoters` > 0, true when the hard state's commit index changed: it must be synced
   * like a vote, since this node's signed acknowledgements promise it (AckClaim.locked).
   */
  readonly syncCommit?: boolean
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot'

export interface PeerStatus {
  readonly match: number
  readonly next: number
  readonly state: ProgressState
  readonly recentActive: boolean
  readonly inflightMsgs: number
  readonly pendingSnapshot: number
  readonly isLearner: boolean
}

export interface Status {
  readonly id: NodeId
  readonly term: number
  readonly vote: NodeId | null
  readonly role: Role
  readonly leader: NodeId | null
  readonly commit: number
  readonly applied: number
  readonly firstIndex: number
  readonly lastIndex: number
  readonly snapshotIndex: number
  readonly configuration: Configuration
  readonly leadTransferee: NodeId | null
  /** Only on the leader: every member's replication progress (the leader's own included). */
  readonly progress: Readonly<Record<NodeId, PeerStatus>> | null
}
