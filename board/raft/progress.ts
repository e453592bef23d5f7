// The leader's view of each member's replication progress, flow control, votes and quorums.

import assert from 'node:assert/strict'
import type { Configuration, NodeId, PeerStatus, ProgressState } from './types.js'

/** Sliding window of append messages in flight to one follower, bounded by count and bytes. */
export class Inflights {
  private readonly lastIndexes: number[] = []
  private readonly sizesBytes: number[] = []
  private head = 0
  private bytes = 0

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number
  ) {}

  get count(): number {
    return this.lastIndexes.length - this.head
  }

  full(): boolean {
    return this.count >= this.maxCount || this.bytes >= this.maxBytes
  }

  /** Records a message whose last entry is lastIndex; indexes must increase. */
  add(lastIndex: number, sizeBytes: number): void {
    assert(this.count === 0 || lastIndex > this.lastIndexes[this.lastIndexes.length - 1]!, 'inflights out of order')
    this.lastIndexes.push(lastIndex)
    this.sizesBytes.push(sizeBytes)
    this.bytes += sizeBytes
  }

  /** Frees every message whose last index is <= index (acknowledged). */
  freeLE(index: number): void {
    while (this.head < this.lastIndexes.length && this.lastIndexes[this.head]! <= index) {
      this.bytes -= this.sizesBytes[this.head]!
      this.head++
    }
    this.compactStorage()
  }

  /** Frees the oldest message, so a follower whose acks were lost still gets something sent. */
  freeFirstOne(): void {
    if (this.count === 0) return
    this.bytes -= this.sizesBytes[this.head]!
    this.head++
    this.compactStorage()
  }

  reset(): void {
    this.lastIndexes.length = 0
    this.sizesBytes.length = 0
    this.head = 0
    this.bytes = 0
  }

  private compactStorage(): void {
    if (this.head === this.lastIndexes.length) {
      this.reset()
    } else if (this.head > 64 && this.head * 2 > this.lastIndexes.length) {
      this.lastIndexes.splice(0, this.head)
      this.sizesBytes.splice(0, this.head)
      this.head = 0
    }
  }
}

/**
 * One member's progress as seen by the leader.
 *  - probe: the leader does not know where the follower's log ends; one append at a time, the
 *    next one after a response or a heartbeat response.
 *  - replicate: the follower is caught up; appends are pipelined (next advances optimistically).
 *  - snapshot: a snapshot is on its way; nothing else is sent until it is acknowledged or times out.
 */
export class Progress {
  match = 0
  next: number
  state: ProgressState = 'probe'
  /** In probe state: an append is outstanding, wait for a response or heartbeat response. */
  probeSent = false
  /** Index of the snapshot in flight (snapshot state). */
  pendingSnapshot = 0
  /** Ticks since the snapshot was sent (snapshot state). */
  snapshotElapsedTicks = 0
  /** Heard from since the last check-quorum round. */
  recentActive = false
  readonly inflights: Inflights

  constructor(
    next: number,
    readonly isLearner: boolean,
    maxInflightMsgs: number,
    maxInflightBytes: number
  ) {
    this.next = next
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes)
  }

  private resetState(state: ProgressState): void {
    this.state = state
    this.probeSent = false
    this.pendingSnapshot = 0
    this.snapshotElapsedTicks = 0
    this.inflights.reset()
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it: the follower has it unless it was lost, in which
    // case the probe is rejected and the leader backs off to match + 1.
    const after = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1
    this.resetState('probe')
    this.next = after
  }

  /** The follower says it holds entries only up to `lastIndex`, below its match: probe from there. */
  forgetMatch(lastIndex: number): void {
    this.match = Math.min(this.match, lastIndex)
    this.resetState('probe')
    this.next = this.match + 1
  }

  becomeReplicate(): void {
    this.resetState('replicate')
    this.next = this.match + 1
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot')
    this.pendingSnapshot = snapshotIndex
  }

  /** The follower acknowledged index n. Returns false if that is old news. */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false
    this.match = n
    this.next = Math.max(this.next, n + 1)
    this.probeSent = false
    return true
  }

  /**
   * The follower rejected an append at prevIndex `rejected`; matchHint is where the logs may agree.
   * Returns false for a stale rejection (reordered or duplicated message).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false
      this.next = this.match + 1
      return true
    }
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1)
    this.probeSent = false
    return true
  }

  /** Records an append carrying `count` entries ending at next + count - 1. */
  sentEntries(count: number, sizeBytes: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next += count
        this.inflights.add(this.next - 1, sizeBytes)
      }
    } else {
      this.probeSent = true
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent
      case 'replicate':
        return this.inflights.full()
      case 'snapshot':
        return true
    }
  }

  toStatus(): PeerStatus {
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      recentActive: this.recentActive,
      inflightMsgs: this.inflights.count,
      pendingSnapshot: this.pendingSnapshot,
      isLearner: this.isLearner
    }
  }
}

export type VoteResult = 'won' | 'lost' | 'pending'

/**
 * The quorum of n voters of whom up to `faulty` may lie: floor((n + f) / 2) + 1 (at most n), so
 * that any two quorums share f + 1 voters, one of them honest. A majority when f is 0.
 */
export function quorumSize(n: number, faulty = 0): number {
  return Math.min(n, Math.floor((n + faulty) / 2) + 1)
}

/** The configuration, the leader's per-member progress, and votes collected in an election. */
export class ProgressTracker {
  config: Configuration
  readonly progress = new Map<NodeId, Progress>()
  private readonly votes = new Map<NodeId, boolean>()

  constructor(
    config: Configuration,
    /** Voters that may lie (RaftConfig.faultyVoters). */
    readonly faulty = 0
  ) {
    this.config = config
  }

  isVoter(id: NodeId): boolean {
    return this.config.voters.includes(id)
  }

  quorum(): number {
    return quorumSize(this.config.voters.length, this.faulty)
  }

  /** The highest index replicated on a quorum of voters (match of the quorum-th best voter). */
  quorumMatchIndex(): number {
    const voters = this.config.voters
    if (voters.length === 0) return 0
    const matches: number[] = []
    for (const id of voters) matches.push(this.progress.get(id)?.match ?? 0)
    matches.sort((a, b) => b - a)
    return matches[this.quorum() - 1]!
  }

  /** True if a quorum of voters was recently active (`self` counts as active). */
  quorumActive(self: NodeId): boolean {
    let active = 0
    for (const id of this.config.voters) {
      if (id === self || this.progress.get(id)?.recentActive === true) active++
    }
    return active >= this.quorum()
  }

  resetVotes(): void {
    this.votes.clear()
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted)
  }

  tallyVotes(): VoteResult {
    let granted = 0
    let rejected = 0
    for (const id of this.config.voters) {
      const v = this.votes.get(id)
      if (v === true) granted++
      else if (v === false) rejected++
    }
    const q = this.quorum()
    return granted >= q ? 'won' : rejected > this.config.voters.length - q ? 'lost' : 'pending'
  }
}
