import assert from 'node:assert/strict'
import { bootstrapState, joiningState, makeEntry, ZERO_HASH, type Entry, type Ready } from '../../board/raft/index.js'
import { entryKey, RaftStore, StoreCorruptError } from '../../storage/raft-store.js'
import { tempDatabaseEachTest } from '../helpers/database.js'

const CONFIG = { voters: ['a', 'b', 'c'], learners: ['d'] }

function chain (from: number, count: number, term: number, prevHash: Uint8Array, tag = 'x'): Entry[] {
  const out: Entry[] = []
  let prev = prevHash
  for (let i = 0; i < count; i++) {
    const e = makeEntry(prev, from + i, term, 'normal', new TextEncoder().encode(`${tag}${from + i}`))
    out.push(e)
    prev = e.hash
  }
  return out
}

function ready (parts: Partial<Ready>): Ready {
  return { softState: null, hardState: null, entries: [], snapshot: null, messages: [], committedEntries: [], readStates: [], alarms: [], ...parts }
}

describe('the board store on LevelDB', () => {
  const disk = tempDatabaseEachTest()

  async function reopen (): Promise<RaftStore> {
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

  it('a snapshot keeps the history below it and drops this node\'s entries above it', async () => {
    const store = await RaftStore.open(disk.db)
    await store.bootstrap(joiningState())
    const mine = chain(1, 4, 1, ZERO_HASH)
    await store.persist(ready({ entries: mine, hardState: { term: 1, vote: 'a', commit: 2 } }))
    // The leader's history from 3 to 10 (our 3 and 4 were never committed).
    const history = chain(3, 8, 3, mine[1].hash, 'z')
    const meta = { index: 10, term: 3, hash: history[history.length - 1].hash, configuration: CONFIG }
    await store.persist(ready({ snapshot: { meta, data: new Uint8Array(0) }, hardState: { term: 3, vote: null, commit: 10 } }), history)
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
    await assert.rejects((await reopen()).load(), (err: unknown) => err instanceof StoreCorruptError && /acknowledged entries up to 3 but the log ends at 2: writes were lost/.test((err as Error).message))
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
})
