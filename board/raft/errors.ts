// Typed errors of the Raft core.

import type { NodeId } from './types.js'

export type ProposalRefusal =
  /** This node is not the leader; `leader` names the leader if known. */
  | 'not-leader'
  /** A leadership transfer is in progress. */
  | 'transferring'
  /** The leader holds maxUncommittedBytes of uncommitted payload already (back-pressure). */
  | 'too-many-uncommitted-bytes'
  /** The payload exceeds maxEntryBytes. */
  | 'entry-too-large'
  /** A configuration change is appended but not yet committed. */
  | 'conf-change-pending'
  /** A new leader must commit an entry of its own term before changing the configuration. */
  | 'leader-not-ready'
  /** The configuration change is not valid for the current configuration. */
  | 'invalid-conf-change'
  /** The leader is being removed from the configuration. */
  | 'leader-removed'
  /** The leadership transfer target is not a voter, or is this node. */
  | 'invalid-transfer-target'
  /** The leader already queues maxPendingReads read requests. */
  | 'too-many-pending-reads'

/** Thrown by propose(), proposeConfChange(), readIndex() and transferLeadership() when refused. */
export class ProposalError extends Error {
  constructor(
    readonly reason: ProposalRefusal,
    message: string,
    /** The current leader if known (set for 'not-leader'). */
    readonly leader: NodeId | null = null
  ) {
    super(message)
    this.name = 'ProposalError'
  }
}

/** The persisted state handed to the constructor is inconsistent; the node must not start. */
export class InconsistentStoreError extends Error {
  constructor(message: string) {
    super(`inconsistent raft store: ${message}`)
    this.name = 'InconsistentStoreError'
  }
}

/** A configuration change could not be decoded, or does not apply to the configuration. */
export class ConfChangeError extends Error {
  constructor(message: string) {
    super(`invalid conf change: ${message}`)
    this.name = 'ConfChangeError'
  }
}
