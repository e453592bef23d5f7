/**
 * What a member signs when asked to merge a frozen pool: the merge its own board folds, never while
 * a statement or state under the pool is still being signed (real PoolBoard, LevelDB memory).
 */
import assert from 'node:assert/strict'
import { MergeRefusal, PoolMerge } from '../../daemon/pool/merge.js'
import { SignedRecords } from '../../daemon/pool/signed-record.js'
import {
  applyPayment,
  buildPartitionStatement,
  makeMergeRequest,
  short,
  signMergeRequest,
  stateHash,
  withdrawOutpoints,
  type PoolRef
} from '../../protocol/index.js'
import { tempDatabaseEachTest } from '../helpers/database.js'
import { Harness, genesisEntry, memberByKey, partition, smallGenesis, statementEntry, updateEntry } from './helpers.js'

const ROOT: PoolRef = { kind: 'root' }
const NOW_MS = 1_000_000

describe('merge decisions (daemon/pool/merge.ts)', () => {
  const disk = tempDatabaseEachTest()

  function setup(): { h: Harness; merger: (i: number) => PoolMerge; memory: SignedRecords; sub: PoolRef } {
    const h = new Harness()
    h.accept(genesisEntry(smallGenesis()))
    h.accept(updateEntry(h.state(), 0, 1, 1_000n))
    const stmt = partition(h.state(), [0, 2], [100_000n, 299_000n])
    h.accept(statementEntry(stmt))
    const sub: PoolRef = { kind: 'partition', statementId: h.applied[h.applied.length - 1].result.statementId! }
    const memory = new SignedRecords(disk.db)
    const merger = (i: number): PoolMerge => {
      const key = h.state().pool.members[i]
      return new PoolMerge({
        poolBoard: h.board,
        memberKey: key,
        memberSecret: memberByKey(key).secretKey,
        memory,
        read: async () => {},
        label: (r) => (r.kind === 'root' ? 'root pool' : 'partition'),
        nameOf: (k) => short(k),
        maxRoundMs: 120_000,
        clockSlackMs: 10_000
      })
    }
    return { h, merger, memory, sub }
  }

  function request(
    h: Harness,
    proposer: number,
    folded?: bigint[],
    deadlineMs = NOW_MS + 5_000
  ): ReturnType<typeof signMergeRequest> {
    const fold = h.board.foldPartitions(ROOT)
    assert.ok(fold.ok)
    const key = fold.state.pool.members[proposer]
    return signMergeRequest(
      makeMergeRequest(fold.state, {
        proposer: key,
        folded: folded ?? fold.balances,
        heightT: fold.state.heightT,
        deadlineMs,
        roundId: new Uint8Array(32).fill(9)
      }),
      memberByKey(key).secretKey
    )
  }

  it('signs the merge its board folds, and a different fold is refused naming the member', async () => {
    const { h, merger } = setup()
    const share = await merger(3).decide(request(h, 0), { nowMs: NOW_MS, readTimeoutMs: 1 })
    assert.ok(share !== null)
    const fold = h.board.foldPartitions(ROOT)
    assert.ok(fold.ok)
    assert.deepStrictEqual(fold.balances, [100_000n, 201_000n, 299_000n, 400_000n, 500_000n])
    assert.deepEqual(share.subject, stateHash({ ...fold.state, stateNumber: 2, balances: fold.balances }))
    await assert.rejects(
      merger(1).decide(request(h, 0, [99_000n, 201_000n, 300_000n, 400_000n, 500_000n]), {
        nowMs: NOW_MS,
        readTimeoutMs: 1
      }),
      /balance of member 0 \([0-9a-f]{16}\): its partitions hold 100000, the merge request says 99000/
    )
  })

  it('refuses while a statement under the pool is still being signed, and signs once that round is over', async () => {
    const { h, merger, memory, sub } = setup()
    const subState = h.state(sub)
    const c = subState.pool.members[1]
    // member 2 (c) signed a nested partition of the partition that is not on the board
    await memory.promiseStatement(
      withdrawOutpoints(subState)[1],
      buildPartitionStatement(subState, [c], [299_000n], subState.heightT)
    )
    const now = Date.now()
    await assert.rejects(
      merger(2).decide(request(h, 0, undefined, now + 5_000), { nowMs: now, readTimeoutMs: 1 }),
      (err: unknown) =>
        err instanceof MergeRefusal &&
        err.code === 'signing' &&
        /statement [0-9a-f]{16} .* is still being signed .* a merge would drop it/.test(err.message)
    )
    const later = now + 120_000 + 10_001
    assert.ok(
      (await merger(2).decide(request(h, 0, undefined, later + 5_000), { nowMs: later, readTimeoutMs: 1 })) !== null
    )
  })

  it('refuses while a payment under the pool is still being signed', async () => {
    const { h, merger, memory, sub } = setup()
    const subState = h.state(sub)
    const [a, c] = subState.pool.members
    const now = Date.now()
    // a payment inside the partition that member 0 signed, still in its round
    const payment = { payer: a, payee: c, amountSats: 5n }
    await memory.promiseState(sub, 0, {
      stateHash: stateHash(applyPayment(subState, payment, subState.heightT)),
      roundId: new Uint8Array(32),
      heightT: subState.heightT,
      payment,
      deadlineMs: now + 3_000
    })
    await assert.rejects(
      merger(0).decide(request(h, 1, undefined, now + 5_000), { nowMs: now, readTimeoutMs: 1 }),
      /state 1 of the partition is still being signed/
    )
  })

  it('a promise of another state N+1 blocks the merge until that round is over', async () => {
    const { h, merger, memory } = setup()
    const s1 = h.state()
    const payment = { payer: s1.pool.members[0], payee: s1.pool.members[4], amountSats: 1n }
    await memory.promiseState(ROOT, 1, {
      stateHash: stateHash(applyPayment(s1, payment, s1.heightT)),
      roundId: new Uint8Array(32),
      heightT: s1.heightT,
      payment,
      deadlineMs: NOW_MS
    })
    await assert.rejects(
      merger(4).decide(request(h, 0, undefined, NOW_MS + 60_000), { nowMs: NOW_MS + 9_000, readTimeoutMs: 1 }),
      /in a round that may still complete/
    )
    assert.ok(
      (await merger(4).decide(request(h, 0, undefined, NOW_MS + 60_000), {
        nowMs: NOW_MS + 10_001,
        readTimeoutMs: 1
      })) !== null
    )
  })

  it('only a frozen pool is planned for a merge, with the pools it folds', async () => {
    const { merger, sub } = setup()
    assert.throws(
      () => merger(0).plan(sub, NOW_MS),
      /cannot merge: the partition is open|cannot merge: the partition [0-9a-f]{16} is open/
    )
    const plan = merger(0).plan(ROOT, NOW_MS)
    assert.equal(plan.proposed.stateNumber, 2)
    assert.deepEqual(plan.folded, ['partition'])
  })
})
