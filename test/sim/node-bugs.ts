// Driver and store bugs planted in the whole-node simulator, to show that it finds them: the store
// ones by subclassing RaftStore, the driver ones by undoing a fix on one Board instance. Production
// code carries no switch for any of them.

import type { Ready } from '../../board/raft/index.js'
import type { BoardReplica } from '../../daemon/replica/board.js'
import type { Database } from '../../storage/database.js'
import { RaftStore, StoreCorruptError, type BatchOp } from '../../storage/raft-store.js'

export const NODE_BUGS = [
  'vote-sync-on-term-only',
  'commit-before-entries',
  'unsynced-batches-in-a-row',
  'wiped-member-bootstraps',
  'history-gap',
  'snapshot-single-slot',
  'no-catch-up-check'
] as const

export type NodeBug = (typeof NODE_BUGS)[number]

export const NODE_BUG_DESCRIPTIONS: Record<NodeBug, string> = {
  'vote-sync-on-term-only':
    'the store syncs a hard state only when the term changes (a vote in the same term may be lost)',
  'commit-before-entries':
    'the store writes the hard state (with its commit index) in a batch before the entries it covers',
  'unsynced-batches-in-a-row':
    'the store writes unsynced batches back to back (a crash may keep a later one without an earlier one)',
  'wiped-member-bootstraps': 'a member whose store was wiped bootstraps again as new',
  'history-gap':
    'the driver applies a history snapshot from its first entry, skipping stored entries below it not yet applied',
  'snapshot-single-slot': 'the driver keeps one verified snapshot history; a later one overwrites it before its Ready',
  'no-catch-up-check': 'the driver makes a member a voter without checking that it caught up'
}

export function isNodeBug(s: string): s is NodeBug {
  return (NODE_BUGS as readonly string[]).includes(s)
}

class VoteSyncOnTermOnly extends RaftStore {
  override changesTermOrVote(hs: { term: number }): boolean {
    return hs.term !== this.durableTerm
  }
}

class CommitBeforeEntries extends RaftStore {
  override async persist(
    ready: Ready,
    snapshotEntries: readonly import('../../board/raft/index.js').Entry[] = [],
    appliedOps: readonly BatchOp[] = []
  ): Promise<void> {
    if (ready.hardState === null || (ready.entries.length === 0 && ready.snapshot === null)) {
      await super.persist(ready, snapshotEntries, appliedOps)
      return
    }
    const first = super.persist({ ...ready, entries: [], snapshot: null }, [], [])
    const second = super.persist({ ...ready, hardState: null }, snapshotEntries, appliedOps)
    await first
    await second
  }
}

class UnsyncedBatchesInARow extends RaftStore {
  protected override async enqueue(ops: BatchOp[], sync: boolean): Promise<void> {
    this.unsyncedOps = null
    await super.enqueue(ops, sync)
  }
}

class WipedMemberBootstraps extends RaftStore {
  override async load(): Promise<Awaited<ReturnType<RaftStore['load']>>> {
    try {
      return await super.load()
    } catch (err) {
      if (err instanceof StoreCorruptError && /no longer remembers/.test(err.message)) return null
      throw err
    }
  }
}

export function storeFactory(bug: NodeBug | null): (db: Database) => Promise<RaftStore> {
  switch (bug) {
    case 'vote-sync-on-term-only':
      return async (db) => await VoteSyncOnTermOnly.open(db)
    case 'commit-before-entries':
      return async (db) => await CommitBeforeEntries.open(db)
    case 'unsynced-batches-in-a-row':
      return async (db) => await UnsyncedBatchesInARow.open(db)
    case 'wiped-member-bootstraps':
      return async (db) => await WipedMemberBootstraps.open(db)
    default:
      return async (db) => await RaftStore.open(db)
  }
}

type Incoming = Map<number, { entries: unknown[]; prevIndex: number; prevHash: Uint8Array }>

/** Undoes one of the driver's fixes on this board instance. */
export function plantInBoard(bug: NodeBug | null, board: BoardReplica): void {
  const b = board as unknown as { incomingSnapshots: Incoming; checkCaughtUp: (node: string) => void }
  if (bug === 'history-gap') {
    const map = b.incomingSnapshots
    const set = map.set.bind(map)
    map.set = (k, v) => set(k, { ...v, prevIndex: 0 })
  } else if (bug === 'snapshot-single-slot') {
    const map = b.incomingSnapshots
    const set = map.set.bind(map)
    map.set = (k, v) => {
      map.clear()
      return set(k, v)
    }
  } else if (bug === 'no-catch-up-check') {
    b.checkCaughtUp = () => {}
  }
}
