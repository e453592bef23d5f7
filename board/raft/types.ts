// Plain data types of the Raft core: log entries, persisted state, messages, Ready.
//
// Everything here is plain data (numbers, strings, booleans, Uint8Array, arrays, null) so that a
// binary codec can be written for it without knowing the core. Objects handed to the core or out
// of it are never mutated afterwards; treat them as immutable.

/** Opaque node identifier (in production, a libp2p peer id string). */
export type NodeId = string;

export type EntryType = 'normal' | 'confChange';

/**
 * One log entry. `hash` chains the log: sha256 over a domain tag, the previous entry's hash (the
 * snapshot's hash for the first entry after a snapshot, 32 zero bytes for index 1), index, term,
 * type and data. See hash.ts.
 */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
  readonly hash: Uint8Array;
}

/** What must survive a crash besides the log: current term, vote in that term, commit index. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

/** The membership: voters elect and form quorums; learners only receive the log. */
export interface Configuration {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** Describes the log prefix a snapshot replaces: its last index, term and hash, and the configuration at that index. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly hash: Uint8Array;
  readonly configuration: Configuration;
}

/** A snapshot: metadata plus the application's opaque state at meta.index. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/**
 * The durable state a node restarts from. `entries` are the log entries after the snapshot, in
 * order, contiguous from snapshot.meta.index + 1. `applied` is the index the application state
 * already reflects (default: snapshot.meta.index); committed entries after it are handed out again.
 */
export interface PersistedState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot;
  readonly entries: readonly Entry[];
  readonly applied?: number;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId | null;
}

/** Answer to readIndex(context): the application may serve the read once it has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

/**
 * Something an honest cluster never produces. The core refuses the offending input and keeps
 * running; the driver should log the alarm with its proof and surface it to the operator.
 */
export type Alarm =
  | {
      /** A leader offered an entry that differs from one this node knows to be committed. */
      readonly kind: 'committed-entry-conflict';
      readonly index: number;
      readonly localTerm: number;
      readonly localHash: Uint8Array;
      readonly offeredTerm: number;
      readonly offeredHash: Uint8Array;
      /** The node that offered it, and the term it claimed. */
      readonly from: NodeId;
      readonly term: number;
    }
  | {
      /** A leader sent a malformed append or snapshot (broken hash chain, bad indexes, ...). */
      readonly kind: 'invalid-append';
      readonly from: NodeId;
      readonly term: number;
      readonly index: number;
      readonly reason: string;
    };

// ---------------------------------------------------------------------------------------------
// Messages. Every message carries from, to and the sender's term.

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** Leader to follower: entries after (prevIndex, prevTerm, prevHash), and the leader's commit index. */
export interface AppMessage extends MessageBase {
  readonly type: 'app';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly prevHash: Uint8Array;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Follower to leader. Accepted: the follower's log matches the leader's up to `index`.
 * Rejected: `index` is the rejected prevIndex; (hintIndex, hintTerm) is the follower's best guess
 * of where the logs may still agree (hintTerm 0 when unknown), for fast backtracking.
 */
export interface AppRespMessage extends MessageBase {
  readonly type: 'appResp';
  readonly index: number;
  readonly reject: boolean;
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/** Candidate asks for a vote in `term`. `force` bypasses the leader lease (leadership transfer). */
export interface VoteMessage extends MessageBase {
  readonly type: 'vote' | 'preVote';
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly force: boolean;
}

/** For a granted pre-vote, `term` echoes the requested term rather than the voter's own term. */
export interface VoteRespMessage extends MessageBase {
  readonly type: 'voteResp' | 'preVoteResp';
  readonly reject: boolean;
}

/** Leader to follower: keeps leadership alive, carries min(follower's match, commit) and a read context. */
export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  readonly commit: number;
  readonly context: Uint8Array | null;
}

export interface HeartbeatRespMessage extends MessageBase {
  readonly type: 'heartbeatResp';
  readonly context: Uint8Array | null;
}

/** Leader to a follower whose next entry is compacted away. Answered with an appResp. */
export interface SnapMessage extends MessageBase {
  readonly type: 'snap';
  readonly snapshot: Snapshot;
}

/** Leader to the transfer target: campaign now, bypassing pre-vote and leases. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeoutNow';
}

/** Follower to leader: a forwarded readIndex request. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: 'readIndex';
  readonly context: Uint8Array;
}

/** Leader to follower: the read index for a forwarded request, confirmed by a heartbeat quorum. */
export interface ReadIndexRespMessage extends MessageBase {
  readonly type: 'readIndexResp';
  readonly index: number;
  readonly context: Uint8Array;
}

/** Follower to leader: a forwarded transferLeadership request. */
export interface TransferLeaderMessage extends MessageBase {
  readonly type: 'transferLeader';
  readonly target: NodeId;
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
  | TransferLeaderMessage;

export type MessageType = Message['type'];

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
  readonly softState: SoftState | null;
  /** Present when term, vote or commit changed since the previous Ready. */
  readonly hardState: HardState | null;
  /** Entries to append; they replace any stored entries from entries[0].index on. */
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader, to persist and restore the application from. */
  readonly snapshot: Snapshot | null;
  readonly messages: readonly Message[];
  /** Entries known committed, to apply in order (never in the same Ready as a snapshot). */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly alarms: readonly Alarm[];
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface PeerStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly recentActive: boolean;
  readonly inflightMsgs: number;
  readonly pendingSnapshot: number;
  readonly isLearner: boolean;
}

export interface Status {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly role: Role;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly configuration: Configuration;
  readonly leadTransferee: NodeId | null;
  /** Only on the leader: every member's replication progress (the leader's own included). */
  readonly progress: Readonly<Record<NodeId, PeerStatus>> | null;
}
