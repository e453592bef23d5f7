// Known Raft bugs, planted by subclassing the core (or in the simulated driver), to show that the
// simulator finds them. Production code carries no switch for any of them.

import { Raft, type Entry, type Message, type VoteMessage } from '../../board/raft/index.js'

export const PLANTED_BUGS = [
  'vote-not-persisted',
  'commit-earlier-term',
  'keep-conflicting-suffix',
  'leader-ignores-higher-term',
  'vote-without-log-check',
  'ack-before-persist',
  'read-without-quorum'
] as const

export type PlantedBug = (typeof PLANTED_BUGS)[number]

export const BUG_DESCRIPTIONS: Record<PlantedBug, string> = {
  'vote-not-persisted': 'the driver never writes votedFor to disk (a restarted node may vote twice in a term)',
  'commit-earlier-term': 'the leader commits an entry of an earlier term by counting replicas (Figure 8)',
  'keep-conflicting-suffix': 'a follower keeps its conflicting entries instead of truncating them, and acknowledges',
  'leader-ignores-higher-term': 'a leader that sees a higher term adopts it but keeps leading',
  'vote-without-log-check': 'votes are granted without the election restriction (candidate log up-to-date)',
  'ack-before-persist': 'the driver sends messages before the Ready batch is synced',
  'read-without-quorum': 'the leader answers read-index requests without a heartbeat quorum round'
}

/** §5.4.2 violated: any entry stored on a quorum is committed, whatever its term. */
class CommitEarlierTerm extends Raft {
  protected override maybeCommit(): boolean {
    const index = this.tracker.quorumMatchIndex()
    if (index <= this.log.committed) return false
    this.commitTo(index)
    return true
  }
}

/** §5.3 violated: on a conflict the follower keeps its own entries and appends only past its end. */
class KeepConflictingSuffix extends Raft {
  protected override truncateAndAppend(entries: readonly Entry[]): void {
    const last = this.log.lastIndex()
    const fresh = entries.filter((e) => e.index > last)
    if (fresh.length > 0) super.truncateAndAppend(fresh)
  }
}

/** §5.1 violated: a leader moves to a higher term but does not step down. */
class LeaderIgnoresHigherTerm extends Raft {
  protected override onHigherTerm(m: Message): void {
    if (this.role === 'leader') {
      this.term = m.term
      this.vote = null
      return
    }
    super.onHigherTerm(m)
  }
}

/** §5.4.1 violated: any candidate gets the vote. */
class VoteWithoutLogCheck extends Raft {
  protected override candidateLogOk(_m: VoteMessage): boolean {
    return true
  }
}

/** §6.4 violated: the leader answers with its commit index at once. */
class ReadWithoutQuorum extends Raft {
  protected override handleReadIndex(context: Uint8Array, from: string | null): void {
    this.respondRead(this.log.committed, context, from)
  }
}

export type RaftFactory = (...args: ConstructorParameters<typeof Raft>) => Raft

/** The core class to run for a planted bug (driver-level bugs use the plain core). */
export function raftFactory(bug: PlantedBug | null): RaftFactory {
  const cls: typeof Raft =
    bug === 'commit-earlier-term'
      ? CommitEarlierTerm
      : bug === 'keep-conflicting-suffix'
        ? KeepConflictingSuffix
        : bug === 'leader-ignores-higher-term'
          ? LeaderIgnoresHigherTerm
          : bug === 'vote-without-log-check'
            ? VoteWithoutLogCheck
            : bug === 'read-without-quorum'
              ? ReadWithoutQuorum
              : Raft
  return (config, persisted) => new cls(config, persisted)
}

export function isPlantedBug(s: string): s is PlantedBug {
  return (PLANTED_BUGS as readonly string[]).includes(s)
}
