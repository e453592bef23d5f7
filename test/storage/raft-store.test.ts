import assert from 'node:assert/strict'
import { bootstrapState, joiningState, makeEntry, ZERO_HASH, type Entry, type Ready } from '../../board/raft/index.js'
import { entryKey, RaftStore, StoreCorruptError } from '../../storage/raft-store.js'
import { PREFIX } from '../../storage/database.js'
import { tempDatabaseEachTest } from '../helpers/database.js'

const CONFIG = { voters: ['a', 'b', 'c'], learners: ['d'] }

function chain(from: number, count: number, term: number, prevHash: Uint8Array, tag = 'x'): Entry[] {
  const out: Entry[] = []
  let prev = prevHash
  for (let i = 0; i < count; i++) {
    const e = makeEntry(prev, from + i, term, 'normal', new TextEncoder().encode(`${tag}${from + i}`))
    out.push(e)
    prev = e.hash
  }
  return out
}

function ready(parts: Partial<Ready>): Ready {
  return {
    softState: null,
    hardState: null,
    entries: [],
    snapshot: null,
    messages: [],
    committedEntries: [],
    readStates: [],
    alarms: [],
    ...parts
  }
}

describe('the board store on LevelDB', () => {
  const disk = tempDatabaseEachTest()

  async function reopen(): Promise<RaftStore> {
    return await RaftStore.open(await disk.reopen())
  }

  it('a store that never ran the board loads as null; after bootstrap it loads the initial configuration', async () => {
    const store = await RaftStore.open(disk.db)
    assert.equal(await store.load(), null)
    await store.bootstrap(bootstrapState(CONFIG))
    const loaded = await (await reopen()).load()
    assert.deepEqual(loaded, { ...bootstrapState(CONFIG), applied: 0 })
  })

  it('a persisted Ready survives a reopen exactly: entries, hard state, vote', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    const entries = chain(1, 5, 2, ZERO_HASH)
    await store.persist(ready({ entries, hardState: { term: 2, vote: 'b', commit: 3 } }))
    const loaded = await (await reopen()).load()
    assert.deepEqual(loaded?.hardState, { term: 2, vote: 'b', commit: 3 })
    assert.deepEqual(loaded?.entries, entries)
  })

  it('entries that replace a suffix delete the stale ones after them', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    const first = chain(1, 6, 1, ZERO_HASH)
    await store.persist(ready({ entries: first, hardState: { term: 1, vote: 'a', commit: 2 } }))
    const replacement = chain(3, 2, 2, first[1].hash, 'y')
    await store.persist(ready({ entries: replacement, hardState: { term: 2, vote: 'b', commit: 2 } }))
    const reopened = await reopen()
    assert.equal(reopened.lastStoredIndex, 4)
    assert.deepEqual((await reopened.load())?.entries, [first[0], first[1], ...replacement])
  })

  it("a snapshot keeps the history below it and drops this node's entries above it", async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    const mine = chain(1, 4, 1, ZERO_HASH)
    await store.persist(ready({ entries: mine, hardState: { term: 1, vote: 'a', commit: 2 } }))
    // The leader's history from 3 to 10 (our 3 and 4 were never committed).
    const history = chain(3, 8, 3, mine[1].hash, 'z')
    const meta = { index: 10, term: 3, hash: history[history.length - 1].hash, configuration: CONFIG }
    await store.persist(
      ready({ snapshot: { meta, data: new Uint8Array(0) }, hardState: { term: 3, vote: null, commit: 10 } }),
      history
    )
    const reopened = await reopen()
    const loaded = await reopened.load()
    assert.equal(loaded?.snapshot.meta.index, 10)
    assert.deepEqual(loaded?.entries, [])
    assert.deepEqual(await reopened.readEntries(1, 10), [mine[0], mine[1], ...history])
  })

  it('refuses a store whose hard state acknowledges entries it does not hold', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    await store.persist(ready({ entries: chain(1, 3, 1, ZERO_HASH), hardState: { term: 1, vote: 'a', commit: 3 } }))
    await disk.db.del(entryKey(3))
    await assert.rejects(
      (await reopen()).load(),
      (err: unknown) =>
        err instanceof StoreCorruptError &&
        /acknowledged entries up to 3 but the log ends at 2: writes were lost/.test((err as Error).message)
    )
  })

  it('refuses a damaged entry, naming it', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    await store.persist(ready({ entries: chain(1, 3, 1, ZERO_HASH), hardState: { term: 1, vote: 'a', commit: 1 } }))
    await disk.db.put(entryKey(2), Uint8Array.of(1, 1, 0, 9))
    await assert.rejects((await reopen()).load(), /the board store is damaged: entry 2: hash: expected 32 bytes/)
  })

  it('refuses a log with a gap', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    await store.persist(ready({ entries: chain(1, 4, 1, ZERO_HASH), hardState: { term: 1, vote: 'a', commit: 1 } }))
    await disk.db.del(entryKey(2))
    await assert.rejects((await reopen()).load(), /the log has a gap: expected entry 2, found 3/)
  })

  it('reads committed history in bounded pages', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    const entries = chain(1, 20, 1, ZERO_HASH)
    await store.persist(ready({ entries, hardState: { term: 1, vote: 'a', commit: 20 } }))
    assert.deepEqual(await store.readEntries(5, 9), entries.slice(4, 9))
    assert.equal((await store.readEntries(10, 20, 6)).length, 2, 'stops once 6 bytes of data are read (3 bytes each)')
    assert.deepEqual(await store.readEntries(21, 30), [])
  })

  /** Records every batch the store writes, with its sync flag (the writes still reach LevelDB). */
  function recordBatches(): Array<{ sync: boolean; ops: Array<{ key: Uint8Array }> }> {
    const out: Array<{ sync: boolean; ops: Array<{ key: Uint8Array }> }> = []
    const db = disk.db
    const batch = db.batch.bind(db) as (ops: unknown, options?: { sync?: boolean }) => Promise<void>
    Object.assign(db, {
      batch: async (ops: Array<{ key: Uint8Array }>, options?: { sync?: boolean }) => {
        out.push({ sync: options?.sync === true, ops })
        await batch(ops, options)
      }
    })
    return out
  }

  // Rule (board/raft/types.ts): a vote is durable before the voteResp leaves; a changed vote in the
  // same term is a change too (a store that compared terms only would let a restart vote twice).
  it('a hard state that changes only the vote must be synced; one that changes only the commit need not', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    await store.persist(ready({ hardState: { term: 3, vote: null, commit: 0 } }))
    assert.equal(store.mustSync(ready({ hardState: { term: 3, vote: 'b', commit: 0 } })), true, 'vote only')
    assert.equal(store.changesTermOrVote({ term: 3, vote: 'b', commit: 0 }), true)
    await store.persist(ready({ hardState: { term: 3, vote: 'b', commit: 0 } }))
    assert.equal(store.mustSync(ready({ hardState: { term: 3, vote: 'b', commit: 1 } })), false, 'commit only')
    assert.equal(store.mustSync(ready({ hardState: { term: 3, vote: 'c', commit: 1 } })), true)
    assert.deepEqual((await (await reopen()).load())?.hardState, { term: 3, vote: 'b', commit: 0 })
  })

  // Rule (this store's class comment): LevelDB may lose any record at the end of its log whose sync
  // has not completed, so the batch after an unsynced one is synced and repeats it: a crash keeps
  // the state before, between or after the two, never the second without the first.
  it('the batch after an unsynced one is synced and repeats its operations first', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    const batches = recordBatches()
    const entries = chain(1, 4, 1, ZERO_HASH)
    await store.persist(ready({ entries, hardState: { term: 1, vote: 'a', commit: 0 } }))
    await store.persist(ready({ hardState: { term: 1, vote: 'a', commit: 1 } }), [], [store.appliedOp(1)])
    await store.persist(ready({ hardState: { term: 1, vote: 'a', commit: 2 } }), [], [store.appliedOp(2)])
    await store.persist(ready({ hardState: { term: 1, vote: 'a', commit: 3 } }), [], [store.appliedOp(3)])
    await store.saveSnapshotMeta({ index: 3, term: 1, hash: entries[2].hash, configuration: CONFIG })
    assert.deepEqual(
      batches.map((b) => b.sync),
      [true, false, true, false, true]
    )
    assert.deepEqual(
      batches[2].ops.slice(0, batches[1].ops.length),
      batches[1].ops,
      'the synced batch starts with the unsynced one'
    )
    assert.deepEqual(batches[4].ops.slice(0, batches[3].ops.length), batches[3].ops)
    assert.deepEqual((await (await reopen()).load())?.hardState, { term: 1, vote: 'a', commit: 3 })
  })

  // Rule (docs/raft.md: a node detects what damage it can): a flipped bit in the term or vote would still
  // decode; the hard state's checksum catches it.
  it('refuses a hard state with a flipped bit', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    await store.persist(ready({ entries: chain(1, 2, 7, ZERO_HASH), hardState: { term: 7, vote: 'b', commit: 1 } }))
    const key = Uint8Array.of(PREFIX.raftHardState)
    const bytes = new Uint8Array((await disk.db.get(key))!)
    bytes[1] ^= 0x01 // term 7 -> 6: a valid varint
    await disk.db.put(key, bytes)
    await assert.rejects((await reopen()).load(), /the board store is damaged: .*checksum/)
  })

  // Rule (docs/raft.md, restart): an empty board store is new only if the database was just created.
  it('an empty board store in a database that ran the board before is refused, not bootstrapped', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(bootstrapState(CONFIG))
    for (const key of [Uint8Array.of(PREFIX.raftHardState), Uint8Array.of(PREFIX.raftSnapshot), entryKey(1)])
      await disk.db.del(key)
    await assert.rejects((await reopen()).load(), /voted in terms it no longer remembers/)
  })

  // Rule (this store's enqueue): after a failed write nothing later reaches the disk, so a crash
  // can never keep a later batch (a snapshot above the commit index) without the failed one.
  it('after a failed write, later writes fail too and are never issued', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    const entries = chain(1, 3, 1, ZERO_HASH)
    await store.persist(ready({ entries, hardState: { term: 1, vote: 'a', commit: 0 } }))
    const issued: boolean[] = []
    const db = disk.db
    const batch = db.batch.bind(db) as (ops: unknown, options?: { sync?: boolean }) => Promise<void>
    Object.assign(db, {
      batch: async (ops: unknown, options?: { sync?: boolean }) => {
        issued.push(options?.sync === true)
        if (issued.length === 1) throw new Error('EIO')
        await batch(ops, options)
      }
    })
    const failed = store.persist(
      ready({ entries: chain(4, 1, 1, entries[2].hash), hardState: { term: 1, vote: 'a', commit: 3 } })
    )
    const later = store.saveSnapshotMeta({ index: 3, term: 1, hash: entries[2].hash, configuration: CONFIG })
    await assert.rejects(failed, /EIO/)
    await assert.rejects(later, /EIO/)
    assert.deepEqual(issued, [true], 'only the failed write was issued')
    Object.assign(db, { batch })
    assert.equal((await (await reopen()).load())?.snapshot.meta.index, 0)
  })
})
