/**
 * The pool board on LevelDB: every apply's changes written as batch operations, and a board
 * restored from them equal to the board that made them, after every prefix of a log.
 */
import assert from 'node:assert/strict'
import { encodeRawEntry } from '../../board/entries.js'
import { PoolBoard, type PoolBoardSnapshot } from '../../board/pool-board.js'
import { joiningState, type Entry, type Ready } from '../../board/raft/index.js'
import { SignatureCache } from '../../board/signature-cache.js'
import { findEquivocations, statementId, type PoolRef } from '../../protocol/index.js'
import { poolChangeOps, poolStateKey, spentKey } from '../../storage/pool-store.js'
import { catchUpPoolBoard, loadPoolBoard, PoolApplier } from '../../daemon/replica/pool-applier.js'
import { RaftStore, StoreCorruptError, type BatchOp } from '../../storage/raft-store.js'
import { PREFIX } from '../../storage/database.js'
import { tempDatabaseEachTest } from '../helpers/database.js'
import {
  Harness,
  blocksEntry,
  evidenceEntry,
  genesisEntry,
  kickoutEntry,
  mergeEntry,
  mergeOf,
  partition,
  smallGenesis,
  statementEntry,
  updateEntry
} from './helpers.js'

const ROOT: PoolRef = { kind: 'root' }

/**
 * A log with every kind of entry, accepted and rejected: genesis, updates, a partition, a
 * conflicting statement with evidence, evidence from elsewhere, a nested partition, blocks, a
 * kick-out and its continuation's update, a merge of the nested partition, garbage, a second genesis.
 */
function story(): Entry[] {
  const h = new Harness()
  h.push(new Uint8Array(0))
  h.accept(genesisEntry(smallGenesis()))
  h.accept(updateEntry(h.state(), 0, 1, 1_000n))
  const s1 = h.state()
  const first = partition(s1, [0, 2], [150_000n, 249_000n])
  h.accept(statementEntry(first))
  h.reject(statementEntry(partition(s1, [2, 3], [350_000n, 350_000n])), /conflicts with/)
  const B = s1.pool.members[1]
  h.accept(
    evidenceEntry(findEquivocations(partition(s1, [1, 3], [1n, 600_999n], [B]), partition(s1, [1], [201_000n], [B]))[0])
  )
  const sub: PoolRef = { kind: 'partition', statementId: statementId(first) }
  h.accept(updateEntry(h.state(sub), 1, 0, 9_000n))
  h.reject(updateEntry(s1, 1, 3, 5n), /frozen/)
  h.push(Uint8Array.of(1, 0x55, 0))
  h.push(encodeRawEntry(Uint8Array.of(7)))
  h.accept(statementEntry(partition(s1, [1, 3, 4], [201_000n, 400_000n, 500_000n])))
  const parted: PoolRef = { kind: 'partition', statementId: h.applied[h.applied.length - 1].result.statementId! }
  h.accept(blocksEntry(9))
  h.reject(kickoutEntry(parted, 0, s1.pool.members[3]), /valid from height 111/)
  h.accept(blocksEntry(2))
  h.accept(kickoutEntry(parted, 0, s1.pool.members[3]))
  const cont: PoolRef = { kind: 'continuation', parent: parted, parentStateNumber: 0, evictedIndex: 1 }
  h.accept(updateEntry(h.state(cont), 1, 0, 100_000n))
  h.accept(statementEntry(partition(h.state(sub), [0], [159_000n])))
  h.accept(mergeEntry(mergeOf(h.board, sub)))
  h.reject(updateEntry(h.state(sub), 0, 1, 1n).subarray(0, 10), /state entry/)
  h.reject(genesisEntry(smallGenesis(3)), /already holds/)
  h.board.checkConsistency()
  return h.log.entries
}

const STORY = story()

describe('the pool store on LevelDB', () => {
  const disk = tempDatabaseEachTest()
  const reopen = disk.reopen

  it('an empty store loads as an empty board', async () => {
    const board = await loadPoolBoard(disk.db)
    assert.deepStrictEqual(board.snapshot(), new PoolBoard().snapshot())
  })

  it('restoring after every prefix of a log gives the state of applying that prefix, and continuing gives the same end', async () => {
    const board = new PoolBoard()
    const reference = new PoolBoard()
    for (const e of STORY) reference.apply(e)
    for (let k = 0; k < STORY.length; k++) {
      await disk.db.batch(poolChangeOps(board.apply(STORY[k]).changes))
      await reopen()
      const cache = new SignatureCache()
      const restored = await loadPoolBoard(disk.db, { signatureCache: cache })
      assert.deepStrictEqual(restored.snapshot(), board.snapshot(), `after entry ${k + 1}`)
      assert.equal(cache.stats().misses, 0, 'restoring verifies no signature')
      restored.checkConsistency()
      // a node restarted here and applying the rest ends where a node that never stopped ends
      if (k % 4 === 1) {
        for (const e of STORY.slice(k + 1)) restored.apply(e)
        assert.deepStrictEqual(restored.snapshot(), reference.snapshot(), `restarted after entry ${k + 1}`)
      }
    }
    assert.deepStrictEqual(board.snapshot(), reference.snapshot())
  })

  it("the applier returns the operations for the driver's batch, with the applied index", async () => {
    const board = new PoolBoard()
    const results: string[] = []
    const applier = new PoolApplier(board)
    applier.applied.subscribe(({ results: applied }) => {
      for (const r of applied) results.push(r.outcome)
    })
    const raft = await RaftStore.open(disk.db)
    for (const chunk of [STORY.slice(0, 5), STORY.slice(5, 6), STORY.slice(6)]) {
      const ops = await applier.apply(chunk)
      ops.push(raft.appliedOp(chunk[chunk.length - 1].index))
      await disk.db.batch(ops)
    }
    assert.equal(results.length, STORY.length)
    await reopen()
    const restored = await loadPoolBoard(disk.db)
    assert.equal(restored.appliedIndex, STORY.length)
    assert.deepStrictEqual(restored.snapshot(), board.snapshot())
  })

  it('catches up a pool board that is behind the Raft log', async () => {
    const raft = await RaftStore.open(disk.db)
    await raft.bootstrap(joiningState())
    const ready: Ready = {
      softState: null,
      hardState: { term: 1, vote: null, commit: STORY.length },
      entries: STORY,
      snapshot: null,
      messages: [],
      committedEntries: [],
      readStates: [],
      alarms: []
    }
    await raft.persist(ready)
    const board = new PoolBoard()
    for (const e of STORY.slice(0, 3)) await disk.db.batch(poolChangeOps(board.apply(e).changes))
    const behind = await loadPoolBoard(disk.db)
    assert.equal(await catchUpPoolBoard(behind, raft, disk.db, STORY.length), STORY.length - 3)
    await reopen()
    const reference = new PoolBoard()
    for (const e of STORY) reference.apply(e)
    assert.deepStrictEqual((await loadPoolBoard(disk.db)).snapshot(), reference.snapshot())
  })

  it('forgets the oldest results and rejected statements beyond its retention, on disk too', async () => {
    const retention = { resultsKept: 30, rejectedStatementsKept: 20 }
    const h = new Harness(new PoolBoard(retention))
    h.accept(genesisEntry(smallGenesis(3)))
    const s0 = h.state()
    const ops: BatchOp[] = poolChangeOps(h.applied[0].changes)
    const first = h.push(statementEntry(partition(s0, [0, 1], [0n, 300_000n], []))).result
    ops.push(...poolChangeOps(h.applied[1].changes))
    for (let i = 1; h.board.appliedIndex <= 40; i++) {
      // incomplete statements (no signature): rejected, each with a record
      const a = h.push(statementEntry(partition(s0, [0, 1], [BigInt(i), 300_000n - BigInt(i)], [])))
      assert.equal(a.result.outcome, 'rejected')
      ops.push(...poolChangeOps(a.changes))
    }
    await disk.db.batch(ops)
    assert.equal(h.board.result(1), undefined, 'the oldest result is forgotten')
    assert.deepStrictEqual(
      h.board.recentResults().map((r) => r.index),
      Array.from({ length: 30 }, (_, i) => 12 + i)
    )
    assert.equal(h.board.statement(first.statementId!), undefined, 'the oldest rejected statement is forgotten')
    assert.deepStrictEqual(
      h.board
        .snapshot()
        .statements.map((r) => r.index)
        .sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => 22 + i)
    )
    await reopen()
    const restored = await loadPoolBoard(disk.db, retention)
    assert.deepStrictEqual(restored.snapshot(), h.board.snapshot())
    // a node keeping fewer trims the excess at its next apply
    await reopen()
    const smaller = await loadPoolBoard(disk.db, { resultsKept: 5, rejectedStatementsKept: 5 })
    const a = smaller.apply(h.log.add(blocksEntry(1)))
    assert.equal(smaller.recentResults().length, 5)
    assert.equal(smaller.snapshot().statements.length, 5)
    assert.equal(a.changes.filter((c) => c.type === 'result-forgotten').length, 26)
    assert.equal(a.changes.filter((c) => c.type === 'statement-forgotten').length, 15)
    await disk.db.batch(poolChangeOps(a.changes))
    await reopen()
    assert.deepStrictEqual(
      (await loadPoolBoard(disk.db, { resultsKept: 5, rejectedStatementsKept: 5 })).snapshot(),
      smaller.snapshot()
    )
  })

  describe('damage', () => {
    async function stored(): Promise<PoolBoardSnapshot> {
      const board = new PoolBoard()
      for (const e of STORY) await disk.db.batch(poolChangeOps(board.apply(e).changes))
      return board.snapshot()
    }

    it('a record that does not decode stops the load, naming the key', async () => {
      await stored()
      await disk.db.put(poolStateKey(ROOT), Uint8Array.of(1, 0, 9))
      await assert.rejects(
        loadPoolBoard(disk.db),
        (err: unknown) =>
          err instanceof StoreCorruptError &&
          /the board store is damaged: pool state record at key 1100: pool state: updatedAt: expected 1 bytes, got 0/.test(
            err.message
          )
      )
    })

    it('a record under another key, or an unknown version, stops the load', async () => {
      await stored()
      const rootBytes = await disk.db.get(poolStateKey(ROOT))
      assert(rootBytes !== undefined)
      await disk.db.put(poolStateKey({ kind: 'partition', statementId: new Uint8Array(32) }), rootBytes)
      await assert.rejects(
        loadPoolBoard(disk.db),
        /pool state record at key 1101000000.*: the record is for another pool than its key/
      )
      await disk.db.del(poolStateKey({ kind: 'partition', statementId: new Uint8Array(32) }))
      await disk.db.put(Uint8Array.of(PREFIX.poolMeta), Uint8Array.of(2))
      await assert.rejects(
        loadPoolBoard(disk.db),
        /pool board meta record at key 10: pool board meta: version: unsupported version 2/
      )
    })

    it('records that disagree with one another stop the load', async () => {
      const snap = await stored()
      const spent = snap.spent[0]
      await disk.db.put(spentKey(spent.outpoint), Uint8Array.of(1, ...new Uint8Array(32).fill(4)))
      await assert.rejects(
        loadPoolBoard(disk.db),
        (err: unknown) => err instanceof StoreCorruptError && /inconsistent pool board: .*statement/.test(err.message)
      )
    })

    it('a lost meta record with pool records present stops the load', async () => {
      await stored()
      await disk.db.del(Uint8Array.of(PREFIX.poolMeta))
      await assert.rejects(loadPoolBoard(disk.db), /pool records are present but the pool board meta record is missing/)
    })
  })
})
