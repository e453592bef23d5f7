import { AssertionError } from 'node:assert'
import { PoolBoard, type ApplyResult, type PoolBoardChange, type PoolBoardOptions } from '../../board/pool-board.js'
import type { Entry } from '../../board/raft/index.js'
import type { Database } from '../../storage/database.js'
import { loadPoolBoardSnapshot, poolChangeOps } from '../../storage/pool-store.js'
import { StoreCorruptError, type BatchOp, type RaftStore } from '../../storage/raft-store.js'
import { EventSource, type Events } from '../host/events.js'
import type { BoardApplier } from './board.js'

/**
 * The one way back from the board: the Raft driver hands every batch of committed entries to the
 * pool applier, which applies them to the pool board, returns the records to write with the
 * applied index (storage/pool-store.ts), and tells its listeners what was applied.
 */

/** Entries replayed per batch when the pool board catches up with the Raft log. */
const CATCH_UP_CHUNK_ENTRIES = 1_000

/** One batch of committed entries this node applied, and the pool board's result of each. */
export interface AppliedBatch {
  readonly entries: readonly Entry[]
  readonly results: readonly ApplyResult[]
}

export type AppliedEvents = Events<AppliedBatch>

export class PoolApplier implements BoardApplier {
  private readonly source = new EventSource<AppliedBatch>()

  constructor(readonly board: PoolBoard) {}

  /** Every batch applied from now on, in order (the defenses, the pool service, the proposer's waiters). */
  get applied(): AppliedEvents {
    return this.source
  }

  async apply(entries: readonly Entry[]): Promise<BatchOp[]> {
    const changes: PoolBoardChange[] = []
    const results: ApplyResult[] = []
    for (const e of entries) {
      const { result, changes: made } = this.board.apply(e)
      changes.push(...made)
      results.push(result)
    }
    this.source.emit({ entries, results })
    return poolChangeOps(changes)
  }
}

/**
 * The pool board recorded in `db` (an empty board if none is): every record decoded and checked
 * against its key and against the others. Throws StoreCorruptError naming the damaged key.
 */
export async function loadPoolBoard(db: Database, options: PoolBoardOptions = {}): Promise<PoolBoard> {
  const snapshot = await loadPoolBoardSnapshot(db)
  try {
    return PoolBoard.restore(snapshot, options)
  } catch (err) {
    if (err instanceof AssertionError) throw err
    throw new StoreCorruptError((err as Error).message)
  }
}

/**
 * Applies the committed entries the pool board lacks (from its applied index + 1 to `toIndex`),
 * read from the Raft log, writing each chunk's records in one batch. For a node whose Raft log
 * got ahead of its pool records, e.g. one that ran the board before the pool board existed.
 */
export async function catchUpPoolBoard(
  board: PoolBoard,
  raftStore: RaftStore,
  db: Database,
  toIndex: number
): Promise<number> {
  let applied = 0
  while (board.appliedIndex < toIndex) {
    const from = board.appliedIndex + 1
    const entries = await raftStore.readEntries(from, Math.min(toIndex, from + CATCH_UP_CHUNK_ENTRIES - 1))
    if (entries.length === 0 || entries[0].index !== from)
      throw new StoreCorruptError(`the pool board is at entry ${board.appliedIndex} but the log has no entry ${from}`)
    await db.batch(poolChangeOps(entries.flatMap((e) => board.apply(e).changes)))
    applied += entries.length
  }
  return applied
}
