/**
 * Pool rules: states and their transactions, payments, what a member signs, requests, kick-outs.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  RuleError,
  applyPayment,
  buildPartitionStatement,
  checkMergeRequest,
  checkPartitionRequest,
  checkUpdateAcceptable,
  checkUpdateRequest,
  equalBytes,
  initialState,
  isKickoutPublishable,
  kickout,
  makeMergeRequest,
  makePartitionRequest,
  mergeState,
  makeUpdateRequest,
  poolFromGenesis,
  poolIdOf,
  signMergeRequest,
  signPartitionRequest,
  signUpdateRequest,
  stateHash,
  stateHashAndOutpoints,
  stateTransactions,
  totalOutputSats,
  txid,
  withdrawOutpoint,
  withdrawOutpoints,
  type Payment,
  type PoolState,
  type RuleErrorCode
} from '../../protocol/index.js'
import { MEMBERS, arbGenesis, arbPaymentChoice, fill32, memberByKey, paymentFrom, testGenesis } from './fixtures.js'

function refused(code: RuleErrorCode, message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof RuleError, `expected a RuleError, got ${String(e)}`)
    assert.equal(e.code, code, e.message)
    assert.match(e.message, message)
    return true
  }
}

const g = testGenesis(4, [100_000n, 200_000n, 300_000n, 0n])
const s0 = initialState(g)
const [A, B, C, D] = s0.pool.members as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]

describe('protocol rules', () => {
  describe('pools and states', () => {
    it('derives the root pool and state 0 from the genesis', () => {
      const pool = poolFromGenesis(g)
      assert.deepStrictEqual(pool.poolId, poolIdOf(g))
      assert.deepStrictEqual(pool.ref, { kind: 'root' })
      assert.equal(pool.totalSats, 600_000n)
      assert.deepStrictEqual(pool.funding, g.funding)
      assert.equal(s0.stateNumber, 0)
      assert.equal(s0.heightT, g.creationHeight)
      assert.deepStrictEqual(s0.balances, g.balances)
    })

    it('builds the Update, Withdraw and kick-out transactions of a state', () => {
      const txs = stateTransactions(s0)
      assert.deepStrictEqual(txs.update.inputs, [g.funding])
      assert.equal(totalOutputSats(txs.update), 600_000n)
      const updateId = txid(txs.update)
      s0.pool.members.forEach((key, i) => {
        const w = txs.withdraws[i]!
        const k = txs.kickouts[i]!
        assert.deepStrictEqual(w.inputs, [{ txid: updateId, vout: 0 }])
        assert.deepStrictEqual(w.outputs[0], { valueSats: s0.balances[i], key })
        assert.equal(totalOutputSats(w), 600_000n, 'a Withdraw conserves the pool total')
        assert.equal(w.locktime, 0)
        assert.equal(k.locktime, g.creationHeight + g.kickoutDelayBlocks)
        assert.deepStrictEqual({ ...k, locktime: 0 }, w, 'a kick-out is the Withdraw with a locktime')
        assert.deepStrictEqual(withdrawOutpoint(s0, i), { txid: txid(w), vout: 0 })
      })
      assert.deepStrictEqual(stateHashAndOutpoints(s0), { hash: stateHash(s0), outpoints: withdrawOutpoints(s0) })
      // D has all of nothing: no remainder output when the member holds everything, one otherwise.
      const rich = initialState(testGenesis(2, [5n, 0n]))
      const t = stateTransactions(rich)
      const iRich = rich.balances.indexOf(5n)
      assert.equal(t.withdraws[iRich]!.outputs.length, 1)
      assert.equal(t.withdraws[1 - iRich]!.outputs.length, 2)
    })

    it('gives every state its own Update txid and state hash', () => {
      fc.assert(
        fc.property(arbGenesis(4), fc.array(arbPaymentChoice, { minLength: 1, maxLength: 6 }), (genesis, choices) => {
          let s = initialState(genesis)
          const ids = new Set<string>([Buffer.from(txid(stateTransactions(s).update)).toString('hex')])
          const hashes = new Set<string>([Buffer.from(stateHash(s)).toString('hex')])
          for (const c of choices) {
            const p = paymentFrom(s, c.payer, c.payee, c.fraction)
            if (!p) continue
            s = applyPayment(s, p, s.heightT)
            ids.add(Buffer.from(txid(stateTransactions(s).update)).toString('hex'))
            hashes.add(Buffer.from(stateHash(s)).toString('hex'))
          }
          assert.equal(ids.size, s.stateNumber + 1)
          assert.equal(hashes.size, s.stateNumber + 1)
        }),
        { numRuns: 50 }
      )
    })
  })

  describe('payments', () => {
    it('every generated payment moves exactly its amount from payer to payee', () => {
      fc.assert(
        fc.property(arbGenesis(5), fc.array(arbPaymentChoice, { maxLength: 10 }), (genesis, choices) => {
          let s = initialState(genesis)
          for (const c of choices) {
            const p = paymentFrom(s, c.payer, c.payee, c.fraction)
            if (!p) continue
            const next = applyPayment(s, p, s.heightT + 1)
            // (applyPayment itself asserts that the sum is conserved and no balance is negative)
            const moved = (m: Uint8Array): bigint =>
              (equalBytes(m, p.payee) ? p.amountSats : 0n) - (equalBytes(m, p.payer) ? p.amountSats : 0n)
            assert.deepStrictEqual(
              next.balances,
              s.pool.members.map((m, i) => s.balances[i]! + moved(m))
            )
            assert.equal(next.stateNumber, s.stateNumber + 1)
            // every member accepts an honest payment
            for (const m of s.pool.members) checkUpdateAcceptable(s, next, m, p)
            s = next
          }
        }),
        { numRuns: 100 }
      )
    })

    it('refuses bad payments, naming the problem', () => {
      assert.throws(
        () => applyPayment(s0, { payer: A, payee: B, amountSats: 0n }, s0.heightT),
        refused('bad-payment', /payment amount must be a positive number of sats, got 0/)
      )
      assert.throws(
        () => applyPayment(s0, { payer: A, payee: A, amountSats: 1n }, s0.heightT),
        refused('bad-payment', /payer and payee are the same member/)
      )
      assert.throws(
        () => applyPayment(s0, { payer: fill32(9), payee: A, amountSats: 1n }, s0.heightT),
        refused('not-a-member', /payer 0909090909090909 is not a member of the root pool/)
      )
      assert.throws(
        () => applyPayment(s0, { payer: A, payee: fill32(9), amountSats: 1n }, s0.heightT),
        refused('not-a-member', /payee 0909090909090909 is not a member/)
      )
      assert.throws(
        () => applyPayment(s0, { payer: A, payee: B, amountSats: 100_001n }, s0.heightT),
        refused('insufficient-balance', /has 100000 sats, cannot pay 100001/)
      )
      assert.throws(
        () => applyPayment(s0, { payer: A, payee: B, amountSats: 1n }, s0.heightT - 1),
        refused('height', /heightT 799999 is before the current state's height 800000/)
      )
      assert.throws(
        () => applyPayment(s0, { payer: A, payee: B, amountSats: 1n }, 499_999_900),
        refused('height', /reaches the locktime threshold/)
      )
    })
  })

  describe('checkUpdateAcceptable', () => {
    const pay: Payment = { payer: A, payee: B, amountSats: 40_000n }
    const s1 = applyPayment(s0, pay, s0.heightT + 2)
    const withBalances = (balances: bigint[], extra: Partial<PoolState> = {}): PoolState => ({
      ...s1,
      balances,
      ...extra
    })

    it('accepts the honest successor for every member', () => {
      for (const m of [A, B, C, D]) checkUpdateAcceptable(s0, s1, m, pay)
    })

    it('refuses a wrong state number', () => {
      assert.throws(
        () => checkUpdateAcceptable(s0, { ...s1, stateNumber: 2 }, C, pay),
        refused('state-number', /^state number: expected 1, got 2$/)
      )
      assert.throws(
        () => checkUpdateAcceptable(s0, { ...s1, stateNumber: 0 }, C, pay),
        refused('state-number', /expected 1, got 0/)
      )
    })

    it('refuses another pool', () => {
      const other = { ...s1, pool: { ...s1.pool, poolId: fill32(7) } }
      assert.throws(
        () => checkUpdateAcceptable(s0, other, C, pay),
        refused('wrong-pool', /another pool than root pool state 0/)
      )
      const otherRef = { ...s1, pool: { ...s1.pool, ref: { kind: 'partition' as const, statementId: fill32(1) } } }
      assert.throws(() => checkUpdateAcceptable(s0, otherRef, C, pay), refused('wrong-pool', /another pool/))
    })

    it('refuses a negative balance, a wrong count, a sum not conserved', () => {
      const bal = s1.balances
      assert.throws(
        () => checkUpdateAcceptable(s0, withBalances([bal[0]!, bal[1]!, bal[2]! + 10n, -10n]), C, pay),
        refused('negative-balance', /balance of member 3 \([0-9a-f]{16}\) is negative: -10/)
      )
      assert.throws(
        () => checkUpdateAcceptable(s0, withBalances(bal.slice(0, 3)), C, pay),
        refused('balance-count', /expected 4 balances \(one per member\), got 3/)
      )
      assert.throws(
        () => checkUpdateAcceptable(s0, withBalances([bal[0]!, bal[1]!, bal[2]! + 1n, bal[3]!]), C, pay),
        refused('sum-not-conserved', /^sum of balances: expected 600000, got 600001$/)
      )
    })

    it('refuses to lower my balance unless I am the payer, and the payer pays at most the amount', () => {
      const bal = s1.balances
      // C loses 5 sats to A: C refuses, others do not object to their own balance.
      const stolen = withBalances([bal[0]! + 5n, bal[1]!, bal[2]! - 5n, bal[3]!])
      assert.throws(
        () => checkUpdateAcceptable(s0, stolen, C, pay),
        refused('balance-decreased', /^my balance would drop from 300000 to 299995 sats and I am not the payer$/)
      )
      checkUpdateAcceptable(s0, stolen, D, pay)
      // The payer A pays 40k + 1: A refuses.
      const over = withBalances([bal[0]! - 1n, bal[1]! + 1n, bal[2]!, bal[3]!])
      assert.throws(
        () => checkUpdateAcceptable(s0, over, A, pay),
        refused('overpayment', /^my balance would drop by 40001 sats, more than the payment amount 40000$/)
      )
      // The payee gets less than the payment: it is still not a decrease of its balance, so B accepts.
      checkUpdateAcceptable(s0, withBalances([bal[0]! + 1n, bal[1]! - 1n, bal[2]!, bal[3]!]), B, pay)
    })

    it('refuses a malformed payment, a non-member, a height going back', () => {
      assert.throws(
        () => checkUpdateAcceptable(s0, s1, C, { ...pay, amountSats: -1n }),
        refused('bad-payment', /positive/)
      )
      assert.throws(
        () => checkUpdateAcceptable(s0, s1, C, { ...pay, amountSats: 1_000_000n }),
        refused('insufficient-balance', /cannot pay 1000000/)
      )
      assert.throws(
        () => checkUpdateAcceptable(s0, s1, MEMBERS[9]!.publicKey, pay),
        refused('not-a-member', /member [0-9a-f]{16} is not a member of the root pool/)
      )
      assert.throws(
        () => checkUpdateAcceptable(s0, { ...s1, heightT: s0.heightT - 1 }, C, pay),
        refused('height', /before the current state's height/)
      )
    })

    it('a member who is not the payer refuses any proposal that lowers its balance', () => {
      fc.assert(
        fc.property(fc.nat(3), fc.nat(3), fc.bigInt({ min: 1n, max: 1000n }), (victim, gainer, delta) => {
          fc.pre(victim !== gainer && s0.balances[victim]! >= delta)
          const bal = [...s0.balances]
          bal[victim] = bal[victim]! - delta
          bal[gainer] = bal[gainer]! + delta
          const me = s0.pool.members[victim]!
          if (equalBytes(me, pay.payer)) return // the payer may lose up to the amount
          assert.throws(
            () => checkUpdateAcceptable(s0, withBalances(bal), me, pay),
            refused('balance-decreased', /I am not the payer/)
          )
        })
      )
    })
  })

  describe('update requests', () => {
    const roundId = fill32(0x42)
    const pay: Payment = { payer: B, payee: D, amountSats: 1_000n }
    const unsigned = makeUpdateRequest(s0, {
      proposer: B,
      payment: pay,
      heightT: s0.heightT + 1,
      deadlineMs: 1_000,
      roundId
    })
    const req = signUpdateRequest(unsigned, memberByKey(B).secretKey)

    it('gives the proposed state N+1, which every member accepts', () => {
      const proposed = checkUpdateRequest(s0, req, { nowMs: 999 })
      assert.equal(proposed.stateNumber, 1)
      assert.deepStrictEqual(proposed, applyPayment(s0, pay, s0.heightT + 1))
      for (const m of [A, B, C, D]) checkUpdateAcceptable(s0, proposed, m, req.payment)
    })

    it('refuses, naming the problem', () => {
      const s1 = applyPayment(s0, pay, s0.heightT)
      assert.throws(
        () => checkUpdateRequest(s1, req),
        refused('stale-state', /^request starts from state 0, current state is 1$/)
      )
      const sameNumber = { ...s0, heightT: s0.heightT + 5 }
      assert.throws(() => checkUpdateRequest(sameNumber, req), refused('stale-state', /state hash differs/))
      assert.throws(
        () => checkUpdateRequest(s0, { ...req, signature: new Uint8Array(64) }),
        refused('bad-signature', /signature on the update request does not verify/)
      )
      const byC = signUpdateRequest({ ...unsigned }, memberByKey(C).secretKey)
      assert.throws(() => checkUpdateRequest(s0, byC), refused('bad-signature', /proposer [0-9a-f]{16}'s signature/))
      assert.throws(
        () => checkUpdateRequest(s0, req, { nowMs: 1_001 }),
        refused('deadline-passed', /deadline 1000 passed \(now 1001\)/)
      )
      const greedy = signUpdateRequest(
        {
          ...unsigned,
          newBalances: [unsigned.newBalances[0]! - 1n, unsigned.newBalances[1]! + 1n, ...unsigned.newBalances.slice(2)]
        },
        memberByKey(B).secretKey
      )
      assert.throws(
        () => checkUpdateRequest(s0, greedy),
        refused(
          'balances-mismatch',
          /balance of member 0 \([0-9a-f]{16}\): the payment gives 100000, the request says 99999/
        )
      )
      const elsewhere = signUpdateRequest({ ...unsigned, poolId: fill32(3) }, memberByKey(B).secretKey)
      assert.throws(
        () => checkUpdateRequest(s0, elsewhere),
        refused('wrong-pool', /request is for pool 0303030303030303/)
      )
      const outsider = signUpdateRequest({ ...unsigned, proposer: MEMBERS[9]!.publicKey }, MEMBERS[9]!.secretKey)
      assert.throws(
        () => checkUpdateRequest(s0, outsider),
        refused('not-a-member', /proposer [0-9a-f]{16} is not a member/)
      )
    })
  })

  describe('partition rules', () => {
    it('refuses invalid partitions, naming the problem', () => {
      const h = s0.heightT
      assert.throws(() => buildPartitionStatement(s0, [], [], h), refused('no-actives', /at least one active/))
      assert.throws(
        () => buildPartitionStatement(s0, [A, MEMBERS[9]!.publicKey], [100_000n, 0n], h),
        refused('not-a-member', /active [0-9a-f]{16} is not a member of the root pool/)
      )
      assert.throws(
        () => buildPartitionStatement(s0, [A, A], [50_000n, 50_000n], h),
        refused('duplicate-active', /is listed twice/)
      )
      assert.throws(
        () => buildPartitionStatement(s0, [A, B], [300_001n, -1n], h),
        refused('negative-balance', /new balance of active [0-9a-f]{16} is negative: -1/)
      )
      assert.throws(
        () => buildPartitionStatement(s0, [A, B], [150_000n, 150_001n], h),
        refused('sum-not-conserved', /^sum of new balances 300001 differs from the actives' current balances 300000$/)
      )
      assert.throws(
        () => buildPartitionStatement(s0, [A, B], [300_000n], h),
        refused('balance-count', /expected 2 balances \(one per active\), got 1/)
      )
      assert.throws(
        () => buildPartitionStatement(s0, [A, B], [0n, 300_000n], h - 1),
        refused('height', /before the current state's height/)
      )
    })

    it('accepts actives in any order and sorts them canonically', () => {
      const x = buildPartitionStatement(s0, [C, A], [1n, 399_999n], s0.heightT)
      const y = buildPartitionStatement(s0, [A, C], [399_999n, 1n], s0.heightT)
      assert.deepStrictEqual(x, y)
      assert.deepStrictEqual(x.actives, [A, C])
    })

    it('checks partition requests', () => {
      const params = {
        proposer: A,
        actives: [A, C],
        newBalances: [200_000n, 200_000n],
        heightT: s0.heightT + 1,
        deadlineMs: 50,
        roundId: fill32(1)
      }
      const req = signPartitionRequest(makePartitionRequest(s0, params), memberByKey(A).secretKey)
      const stmt = checkPartitionRequest(s0, req, { nowMs: 10 })
      assert.deepStrictEqual(stmt, buildPartitionStatement(s0, [A, C], [200_000n, 200_000n], s0.heightT + 1))
      assert.throws(
        () => checkPartitionRequest(s0, req, { nowMs: 51 }),
        refused('deadline-passed', /deadline 50 passed/)
      )
      assert.throws(
        () => checkPartitionRequest(s0, { ...req, heightT: req.heightT + 1 }),
        refused('bad-signature', /partition request does not verify/)
      )
      assert.throws(
        () => makePartitionRequest(s0, { ...params, proposer: B }),
        refused('not-a-member', /proposer [0-9a-f]{16} is not one of the actives/)
      )
      const s1 = applyPayment(s0, { payer: A, payee: B, amountSats: 1n }, s0.heightT)
      assert.throws(
        () => checkPartitionRequest(s1, req),
        refused('stale-state', /request partitions state 0, current state is 1/)
      )
    })
  })

  describe('merge requests', () => {
    const g = testGenesis(3, [100n, 200n, 300n], { kickoutDelayBlocks: 10, creationHeight: 5 })
    const s0 = initialState(g)
    const [A, B] = s0.pool.members as [Uint8Array, Uint8Array, Uint8Array]
    const folded = [150n, 150n, 300n]
    const req = signMergeRequest(
      makeMergeRequest(s0, { proposer: A, folded, heightT: 6, deadlineMs: 1_000, roundId: fill32(7) }),
      memberByKey(A).secretKey
    )

    it('a member signs the merge it reads off its own board, and nothing else', () => {
      const next = checkMergeRequest(s0, req, folded, { nowMs: 999 })
      assert.equal(next.stateNumber, 1)
      assert.equal(next.heightT, 6)
      assert.deepStrictEqual(next.balances, folded)
      assert.throws(
        () => checkMergeRequest(s0, req, [100n, 200n, 300n]),
        /^RuleError: balance of member 0 \([0-9a-f]{16}\): its partitions hold 100, the merge request says 150$/
      )
      assert.throws(() => checkMergeRequest(s0, req, folded, { nowMs: 1_001 }), /deadline 1000 passed/)
      assert.throws(
        () => checkMergeRequest(s0, { ...req, proposer: B }, folded),
        /signature on the merge request does not verify/
      )
      assert.throws(() => checkMergeRequest(next, req, folded), /request merges state 0, current state is 1/)
    })

    it('the folded balances keep the pool total, none negative, and T does not go back', () => {
      assert.throws(() => mergeState(s0, [100n, 200n], 5), /expected 3 balances/)
      assert.throws(
        () => mergeState(s0, [100n, 200n, 301n], 5),
        /the folded balances sum to 601, the root pool holds 600/
      )
      assert.throws(() => mergeState(s0, [-1n, 301n, 300n], 5), /is negative/)
      assert.throws(() => mergeState(s0, folded, 4), /heightT 4 is before the current state's height 5/)
    })
  })

  describe('kick-out', () => {
    it('is the Withdraw with nLockTime T + X, valid from block T + X + 1', () => {
      const s1 = applyPayment(s0, { payer: C, payee: D, amountSats: 5n }, 800_500)
      const k = kickout(s1, D)
      const x = g.kickoutDelayBlocks
      assert.equal(k.locktime, 800_500 + x)
      assert.equal(k.validFromHeight, 800_500 + x + 1)
      assert.equal(k.tx.locktime, k.locktime)
      assert.deepStrictEqual(k.tx.outputs[0], { valueSats: 5n, key: D })
      assert.deepStrictEqual(k.tx, stateTransactions(s1).kickouts[3])
      assert.equal(isKickoutPublishable(k, 800_500 + x - 1), false)
      assert.equal(isKickoutPublishable(k, 800_500 + x), true)
      assert.throws(() => kickout(s1, MEMBERS[9]!.publicKey), refused('not-a-member', /is not a member/))
    })
  })
})
