import assert from 'node:assert/strict'
import { SignedRecords } from '../../daemon/pool/signed-record.js'
import {
  applyPayment,
  buildPartitionStatement,
  initialState,
  stateHash,
  statementId,
  withdrawOutpoints
} from '../../protocol/index.js'
import { tempDatabaseEachTest } from '../helpers/database.js'
import { testGenesis } from '../protocol/fixtures.js'

describe('what a member signed (never twice)', () => {
  const disk = tempDatabaseEachTest()
  const g = testGenesis(3, [1000n, 2000n, 3000n], { kickoutDelayBlocks: 5, creationHeight: 10 })
  const s0 = initialState(g)
  const [a, b, c] = s0.pool.members
  const pay = (
    payee: Uint8Array,
    amountSats: bigint,
    deadlineMs = 5_000
  ): {
    stateHash: Uint8Array
    roundId: Uint8Array
    heightT: number
    payment: { payer: Uint8Array; payee: Uint8Array; amountSats: bigint }
    deadlineMs: number
  } => {
    const payment = { payer: a, payee, amountSats }
    return {
      stateHash: stateHash(applyPayment(s0, payment, 10)),
      roundId: new Uint8Array(32).fill(Number(amountSats % 200n)),
      heightT: 10,
      payment,
      deadlineMs
    }
  }

  it('signs one state N+1 per state N; the same state again is fine', async () => {
    const memory = new SignedRecords(disk.db)
    assert.deepEqual(await memory.promiseState(s0.pool.ref, 0, pay(b, 10n)), { ok: true })
    assert.deepEqual(
      await memory.promiseState(s0.pool.ref, 0, pay(b, 10n)),
      { ok: true },
      'a retried round signs the same state'
    )
    const other = await memory.promiseState(s0.pool.ref, 0, pay(c, 10n))
    assert.equal(other.ok, false)
    if (!other.ok) {
      assert.deepEqual(other.earlier.stateHash, pay(b, 10n).stateHash)
      assert.deepEqual(other.earlier.payment.payee, b)
      assert.equal(other.earlier.payment.amountSats, 10n)
    }
    assert.deepEqual(
      await memory.promiseState(s0.pool.ref, 1, pay(c, 10n)),
      { ok: true },
      'another state number is another promise'
    )
  })

  it("a merge replaces a promise only once that round's deadline passed (rule: no honest member signs after a deadline)", async () => {
    const memory = new SignedRecords(disk.db)
    assert.deepEqual(await memory.promiseState(s0.pool.ref, 0, pay(b, 10n, 5_000)), { ok: true })
    const early = await memory.promiseState(s0.pool.ref, 0, pay(c, 10n), { expiredBeforeMs: 5_000 })
    assert.equal(early.ok, false, 'the round may still complete at its deadline')
    assert.deepEqual(await memory.promiseState(s0.pool.ref, 0, pay(c, 10n), { expiredBeforeMs: 5_001 }), { ok: true })
    await disk.reopen()
    const record = await new SignedRecords(disk.db).signedState(s0.pool.ref, 0)
    assert.deepEqual(record?.stateHash, pay(c, 10n).stateHash)
    assert.equal(record?.deadlineMs, 5_000)
  })

  it('concurrent requests for the same state number: exactly one wins', async () => {
    const memory = new SignedRecords(disk.db)
    const results = await Promise.all(
      [1n, 2n, 3n, 4n, 5n].map(async (n) => await memory.promiseState(s0.pool.ref, 0, pay(b, n)))
    )
    assert.equal(results.filter((r) => r.ok).length, 1)
  })

  it('signs one statement per Withdraw output of its own, and remembers it across a reopen', async () => {
    const mine = withdrawOutpoints(s0)[0]
    const bal = (i: number): bigint => s0.balances[i]
    const first = buildPartitionStatement(s0, [a, b], [bal(0), bal(1)], 10)
    const second = buildPartitionStatement(s0, [a, c], [bal(0), bal(2)], 10)
    assert.deepEqual(await new SignedRecords(disk.db).promiseStatement(mine, first), { ok: true })
    await disk.reopen()
    const memory = new SignedRecords(disk.db)
    const refused = await memory.promiseStatement(mine, second)
    assert.equal(refused.ok, false)
    if (!refused.ok) assert.deepEqual(refused.earlier.statementId, statementId(first))
    assert.deepEqual(await memory.promiseStatement(mine, first), { ok: true })
    // The lab's equivocating member forces it through.
    assert.deepEqual(await memory.promiseStatement(mine, second, true), { ok: true })
    const listed = await memory.signedStatements()
    assert.equal(listed.length, 1)
    assert.deepEqual(listed[0].statementId, statementId(second))
    assert.deepEqual(listed[0].statement.actives, [a, c].sort(Buffer.compare))
  })
})
