import { makeEntry, ZERO_HASH } from '../../../board/raft/index.js'
import { PoolBoard } from '../../../board/pool-board.js'
import { SignatureCache } from '../../../board/signature-cache.js'
import type { Database } from '../../../storage/database.js'
import { clearPoolBoard } from '../../../storage/pool-store.js'
import { catchUpPoolBoard } from '../../replica/pool-applier.js'
import { putEntry, RaftStore, type BatchOp } from '../../../storage/raft-store.js'

/**
 * Offline rewrites of a stopped node's store, for the attack lab (daemon/lab/campaign/drop.ts): what a
 * board host who wants to hide an entry does to its own copy. Never used by a running node.
 */

/** Entries re-hashed per batch. */
const REWRITE_CHUNK_ENTRIES = 1_000

export interface RewriteResult {
  index: number
  term: number
  /** Entries after `index` whose hashes changed. */
  rehashed: number
  /** The pool board's applied index after it was rebuilt from the rewritten log. */
  applied: number
}

/**
 * Replaces the data of the stored entry at `index` by `data` (type normal, same index and term, so
 * that the log stays as up to date as before), re-hashes the chain from there to the last stored
 * entry (and the snapshot's hash if it covers them), then rebuilds the pool board's records by
 * replaying the rewritten log up to the applied index. The Raft hard state is kept.
 */
export async function rewriteStoredEntry(db: Database, index: number, data: Uint8Array): Promise<RewriteResult> {
  const store = await RaftStore.open(db)
  const persisted = await store.load()
  if (persisted === null) throw new Error('this node never ran the board: its log is empty')
  const target = await store.entry(index)
  if (target === undefined)
    throw new Error(`the log holds no entry at index ${index} (it ends at ${store.lastStoredIndex})`)
  const hashBefore = index === 1 ? ZERO_HASH : (await store.entry(index - 1))?.hash
  if (hashBefore === undefined) throw new Error(`the log holds no entry at index ${index - 1}`)
  let prevHash: Uint8Array = hashBefore
  const last = store.lastStoredIndex
  const meta = persisted.snapshot.meta
  let rehashed = 0
  for (let from = index; from <= last; from += REWRITE_CHUNK_ENTRIES) {
    const entries = await store.readEntries(from, Math.min(last, from + REWRITE_CHUNK_ENTRIES - 1))
    const ops: BatchOp[] = []
    for (const e of entries) {
      const next =
        e.index === index
          ? makeEntry(prevHash, index, e.term, 'normal', data)
          : makeEntry(prevHash, e.index, e.term, e.type, e.data)
      if (e.index !== index) rehashed++
      ops.push(putEntry(next))
      prevHash = next.hash
      if (e.index === meta.index) await store.saveSnapshotMeta({ ...meta, hash: next.hash })
    }
    await db.batch(ops, { sync: true })
  }
  // The pool board is what applying the log gives: forget it and apply the rewritten log again.
  await clearPoolBoard(db)
  const applied = persisted.applied ?? meta.index
  const board = new PoolBoard({ signatureCache: new SignatureCache() })
  await catchUpPoolBoard(board, store, db, applied)
  return { index, term: target.term, rehashed, applied: board.appliedIndex }
}
