/**
 * Partitions (including partitions of partitions), conflicts and equivocation evidence.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  applyPayment,
  buildPartitionStatement,
  checkUpdateAcceptable,
  conflictingOutpoints,
  decodeEvidence,
  encodeEvidence,
  equalBytes,
  evidenceId,
  findEquivocations,
  initialState,
  kickout,
  makeEvidence,
  makeStatement,
  outpointKey,
  partitionInitialState,
  partitionPool,
  stateTransactions,
  statementId,
  statementsConflict,
  sumSats,
  totalOutputSats,
  txid,
  verifyEvidence,
  verifySignedState,
  verifyStatement,
  withStatementSignature,
  withdrawOutpoints,
  type PartitionStatement,
  type PoolState
} from '../../protocol/index.js'
import {
  MEMBERS,
  arbGenesis,
  arbPartitionChoice,
  arbPaymentChoice,
  fill32,
  partitionFrom,
  paymentFrom,
  signAllState,
  signStatementBy,
  testGenesis
} from './fixtures.js'

function pay(s: PoolState, choices: { payer: number; payee: number; fraction: number }[]): PoolState {
  for (const c of choices) {
    const p = paymentFrom(s, c.payer, c.payee, c.fraction)
    if (p) s = applyPayment(s, p, s.heightT + 1)
  }
  return s
}

const g = testGenesis(5, [100_000n, 200_000n, 300_000n, 400_000n, 500_000n])
const s0 = initialState(g)
const [A, B, C, D, E] = s0.pool.members as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array]

describe('partitions', () => {
  it("conserve the sum, spend only the actives' Withdraws, and verify against the parent", () => {
    fc.assert(
      fc.property(
        arbGenesis(5),
        fc.array(arbPaymentChoice, { maxLength: 3 }),
        arbPartitionChoice,
        (genesis, payments, choice) => {
          const parent = pay(initialState(genesis), payments)
          const { actives, newBalances } = partitionFrom(parent, choice.pick, choice.cuts)
          const stmt = signStatementBy(buildPartitionStatement(parent, actives, newBalances, parent.heightT))
          assert.deepStrictEqual(verifyStatement(stmt, { parent }), { ok: true })
          // sum: new balances = actives' balances = intermediate output = inputs' values
          const idx = stmt.actives.map((k) => parent.pool.members.findIndex((m) => equalBytes(m, k)))
          const activesSum = idx.reduce((s, i) => s + parent.balances[i]!, 0n)
          assert.equal(sumSats(stmt.newBalances), activesSum)
          assert.equal(totalOutputSats(stmt.intermediateTx), activesSum)
          // inputs are exactly the actives' W(N,a) user_balance outpoints; passives' are untouched
          const all = withdrawOutpoints(parent)
          assert.deepStrictEqual(
            stmt.spent,
            idx.map((i) => all[i])
          )
          assert.deepStrictEqual(stmt.intermediateTx.inputs, stmt.spent)
          const sub = partitionInitialState(parent.pool, stmt)
          // the sub-pool holds exactly what its actives held, among exactly them, and inherits X
          assert.equal(sub.pool.totalSats, activesSum)
          assert.deepStrictEqual(sub.pool.members, stmt.actives)
          assert.equal(sub.pool.kickoutDelayBlocks, parent.pool.kickoutDelayBlocks)
          assert.deepStrictEqual(sub.pool.funding, { txid: txid(stmt.intermediateTx), vout: 0 })
          assert.deepStrictEqual(sub.pool.ref, { kind: 'partition', statementId: statementId(stmt) })
        }
      ),
      { numRuns: 40 }
    )
  })

  it('nest: a partition of a partition at sub-state k verifies, with one code path', () => {
    fc.assert(
      fc.property(
        arbGenesis(5),
        fc.array(arbPaymentChoice, { maxLength: 2 }),
        arbPartitionChoice,
        fc.array(arbPaymentChoice, { maxLength: 3 }),
        arbPartitionChoice,
        (genesis, payments, outer, subPayments, inner) => {
          const root = pay(initialState(genesis), payments)
          const p1 = partitionFrom(root, outer.pick, outer.cuts)
          const st1 = signStatementBy(buildPartitionStatement(root, p1.actives, p1.newBalances, root.heightT))
          assert.ok(verifyStatement(st1, { parent: root }).ok)
          // sub-pool updates: unanimity of the actives, same rules as the root pool
          let sub = partitionInitialState(root.pool, st1)
          const before = sub
          sub = pay(sub, subPayments)
          assert.equal(sumSats(sub.balances), sumSats(before.balances))
          assert.ok(verifySignedState(signAllState(sub)).ok)
          // a partition of the sub-pool at sub-state k
          const p2 = partitionFrom(sub, inner.pick, inner.cuts)
          const st2 = signStatementBy(buildPartitionStatement(sub, p2.actives, p2.newBalances, sub.heightT))
          assert.deepStrictEqual(st2.parent, {
            pool: { kind: 'partition', statementId: statementId(st1) },
            stateNumber: sub.stateNumber
          })
          assert.deepStrictEqual(verifyStatement(st2, { parent: sub }), { ok: true })
          // it spends the sub-pool's W'(k,a), never the root's W(N,a): no conflict with its parent statement
          assert.ok(!statementsConflict(st1, st2))
          const subsub = partitionInitialState(sub.pool, st2)
          assert.equal(subsub.pool.kickoutDelayBlocks, genesis.kickoutDelayBlocks)
          assert.equal(sumSats(subsub.balances), sumSats(p2.newBalances))
          // and the nested statement does not verify against the wrong parent
          assert.equal(verifyStatement(st2, { parent: root }).ok, false)
        }
      ),
      { numRuns: 15 }
    )
  })

  it('sub-pool updates and kick-outs use the same rules and transactions as the root pool', () => {
    const st = signStatementBy(buildPartitionStatement(s0, [B, D], [550_000n, 50_000n], s0.heightT + 10))
    const sub0 = partitionInitialState(s0.pool, st)
    const payment = { payer: B, payee: D, amountSats: 50_000n }
    const sub1 = applyPayment(sub0, payment, sub0.heightT + 1)
    checkUpdateAcceptable(sub0, sub1, D, payment)
    assert.throws(
      () => checkUpdateAcceptable(sub0, sub1, A, payment),
      /member [0-9a-f]{16} is not a member of the partition/
    )
    const txs = stateTransactions(sub1)
    assert.deepStrictEqual(txs.update.inputs, [{ txid: txid(st.intermediateTx), vout: 0 }])
    const k = kickout(sub1, D)
    assert.equal(k.locktime, sub1.heightT + g.kickoutDelayBlocks)
    assert.deepStrictEqual(k.tx.outputs[0], { valueSats: 100_000n, key: D })
    assert.throws(() => partitionPool({ ...s0.pool, poolId: fill32(1) }, st), /another pool/)
  })

  describe('verifyStatement', () => {
    const stmt = buildPartitionStatement(s0, [A, C, E], [300_000n, 300_000n, 300_000n], s0.heightT)
    const signed = signStatementBy(stmt)

    it('names a missing signature, a bad signature, a signature by another key', () => {
      assert.deepStrictEqual(verifyStatement(signed, { parent: s0 }), { ok: true })
      const partial = signStatementBy(stmt, [A, E])
      const v1 = verifyStatement(partial)
      assert.equal(v1.ok, false)
      assert.match(
        (v1 as { reason: string }).reason,
        /^incomplete: missing the signatures of actives 1 \([0-9a-f]{16}\)$/
      )
      assert.deepStrictEqual(verifyStatement(partial, { requireComplete: false }), { ok: true })
      const forged = withStatementSignature(signed, C, signed.signatures[0]!.signature)
      assert.match(
        (verifyStatement(forged) as { reason: string }).reason,
        /^the signature of active 1 \([0-9a-f]{16}\) does not verify$/
      )
      assert.deepStrictEqual(
        verifyStatement(forged, { verify: () => true }),
        { ok: true },
        'signatures are checked by the verifier given'
      )
      // A's signature placed in C's slot does not verify under C's key.
      const misplaced = withStatementSignature(stmt, C, signStatementBy(stmt, [A]).signatures[0]!.signature)
      assert.equal(verifyStatement(misplaced, { requireComplete: false }).ok, false)
    })

    it('names a wrong parent, a non-member, a wrong outpoint, a sum not conserved', () => {
      const s1 = applyPayment(s0, { payer: A, payee: B, amountSats: 1n }, s0.heightT)
      assert.match(
        (verifyStatement(signed, { parent: s1 }) as { reason: string }).reason,
        /statement partitions root pool state 0, but the parent given is root pool state 1/
      )
      // A statement of another pool with the same members does not verify against this one.
      const other = initialState(
        testGenesis(5, [100_000n, 200_000n, 300_000n, 400_000n, 500_000n], { creationHeight: 800_001 })
      )
      const foreign = buildPartitionStatement(other, [A, C], [400_000n, 0n], other.heightT)
      assert.match(
        (verifyStatement(foreign, { parent: s0, requireComplete: false }) as { reason: string }).reason,
        /^poolId [0-9a-f]{16} is not the parent's pool/
      )
      // Same pool, a state with the same number but other balances: the outpoints differ.
      const twin: PoolState = { ...s0, balances: [200_000n, 100_000n, 300_000n, 400_000n, 500_000n] }
      assert.match(
        (verifyStatement(signed, { parent: twin }) as { reason: string }).reason,
        /^spent\[0\] is not the user_balance outpoint of W\(0, [0-9a-f]{16}\)$/
      )
      // Fields that are consistent among themselves but claim more than the actives hold at the parent.
      const claim = makeStatement({
        poolId: s0.pool.poolId,
        parent: { pool: { kind: 'root' }, stateNumber: 0 },
        heightT: s0.heightT,
        actives: [C],
        spent: [withdrawOutpoints(s0)[2]!],
        newBalances: [400_000n]
      })
      assert.match(
        (verifyStatement(claim, { parent: s0, requireComplete: false }) as { reason: string }).reason,
        /^sum of new balances 400000 differs from the actives' balances 300000 at root pool state 0$/
      )
      const stranger = makeStatement({
        poolId: s0.pool.poolId,
        parent: { pool: { kind: 'root' }, stateNumber: 0 },
        heightT: s0.heightT,
        actives: [MEMBERS[9]!.publicKey],
        spent: [withdrawOutpoints(s0)[2]!],
        newBalances: [300_000n]
      })
      assert.match(
        (verifyStatement(stranger, { parent: s0, requireComplete: false }) as { reason: string }).reason,
        /^active 0 \([0-9a-f]{16}\) is not a member of root pool state 0$/
      )
      // Changing a field without re-deriving the intermediate Update is a malformed statement.
      const small = buildPartitionStatement(s0, [C], [300_000n], s0.heightT)
      const lying: PartitionStatement = { ...small, newBalances: [400_000n] }
      assert.match(
        (verifyStatement(lying, { parent: s0, requireComplete: false }) as { reason: string }).reason,
        /^malformed statement: .*intermediateTx: does not match/
      )
    })
  })
})

describe('conflicts and equivocation evidence', () => {
  const arbTwoPartitions = fc.record({
    payments: fc.array(arbPaymentChoice, { maxLength: 2 }),
    first: arbPartitionChoice,
    second: arbPartitionChoice,
    signFirst: fc.nat(31),
    signSecond: fc.nat(31)
  })

  it('conflicting statements produce valid, portable evidence; non-conflicting ones produce none', () => {
    fc.assert(
      fc.property(arbTwoPartitions, ({ payments, first, second, signFirst, signSecond }) => {
        const parent = pay(s0, payments)
        const p1 = partitionFrom(parent, first.pick, first.cuts)
        const p2 = partitionFrom(parent, second.pick, second.cuts)
        const a = buildPartitionStatement(parent, p1.actives, p1.newBalances, parent.heightT)
        const b = buildPartitionStatement(parent, p2.actives, p2.newBalances, parent.heightT + 1) // always a different statement
        const sa = signStatementBy(
          a,
          a.actives.filter((_, i) => (signFirst >> i) & 1)
        )
        const sb = signStatementBy(
          b,
          b.actives.filter((_, i) => (signSecond >> i) & 1)
        )

        const commonActives = a.actives.filter((k) => b.actives.some((x) => equalBytes(x, k)))
        const common = conflictingOutpoints(sa, sb)
        assert.deepStrictEqual(
          new Set(common.map(outpointKey)),
          new Set(
            commonActives.map((k) =>
              outpointKey(withdrawOutpoints(parent)[parent.pool.members.findIndex((m) => equalBytes(m, k))]!)
            )
          )
        )
        assert.equal(statementsConflict(sa, sb), commonActives.length > 0)

        const signedBoth = commonActives.filter(
          (k) =>
            sa.signatures.some((s) => equalBytes(sa.actives[s.index]!, k)) &&
            sb.signatures.some((s) => equalBytes(sb.actives[s.index]!, k))
        )
        const evidence = findEquivocations(sa, sb)
        assert.deepStrictEqual(
          evidence.map((e) => e.member),
          signedBoth
        )
        for (const ev of evidence) {
          const back = decodeEvidence(encodeEvidence(ev))
          assert.deepStrictEqual(verifyEvidence(back, s0.pool.poolId), { ok: true })
          assert.deepStrictEqual(
            evidenceId(back),
            evidenceId(makeEvidence(sb, sa, ev.member)),
            'same evidence whichever order the statements come in'
          )
          assert.equal(verifyEvidence(back, fill32(1)).ok, false)
        }
        if (commonActives.length === 0) {
          assert.deepStrictEqual(evidence, [])
          for (const k of a.actives) {
            if (
              sa.signatures.some((s) => equalBytes(sa.actives[s.index]!, k)) &&
              sb.signatures.some((s) => equalBytes(sb.actives[s.index]!, k))
            ) {
              assert.throws(() => makeEvidence(sa, sb, k), /do not conflict/)
            }
          }
        }
      }),
      { numRuns: 30 }
    )
  })

  it('a statement does not conflict with itself, even with other signatures', () => {
    const a = buildPartitionStatement(s0, [A, B], [0n, 300_000n], s0.heightT)
    const x = signStatementBy(a, [A])
    const y = signStatementBy(a, [A, B])
    assert.deepStrictEqual(conflictingOutpoints(x, y), [])
    assert.deepStrictEqual(findEquivocations(x, y), [])
  })

  it('verifyEvidence names what is wrong', () => {
    const a = signStatementBy(buildPartitionStatement(s0, [A, B], [0n, 300_000n], s0.heightT))
    const b = signStatementBy(buildPartitionStatement(s0, [A, C], [400_000n, 0n], s0.heightT))
    const c = signStatementBy(buildPartitionStatement(s0, [D, E], [0n, 900_000n], s0.heightT))
    const ev = makeEvidence(a, b, A)
    const reason = (v: ReturnType<typeof verifyEvidence>) => (v.ok ? 'ok' : v.reason)
    assert.equal(reason(verifyEvidence(ev, s0.pool.poolId)), 'ok')
    assert.match(
      reason(verifyEvidence(ev, fill32(2))),
      /^first statement belongs to pool [0-9a-f]{16}, not 0202020202020202$/
    )
    assert.match(
      reason(verifyEvidence({ ...ev, firstSignature: ev.secondSignature }, s0.pool.poolId)),
      /^member [0-9a-f]{16}'s signature on the first statement does not verify$/
    )
    assert.match(
      reason(verifyEvidence({ ...ev, member: B }, s0.pool.poolId)),
      /^member [0-9a-f]{16} is not an active of the (first|second) statement$/
    )
    assert.match(reason(verifyEvidence({ ...ev, member: MEMBERS[9]!.publicKey }, s0.pool.poolId)), /is not an active/)
    const first = Buffer.compare(statementId(a), statementId(c)) < 0 ? a : c
    const second = first === a ? c : a
    const notConflicting = {
      member: A,
      first: { ...first, signatures: [] },
      firstSignature: ev.firstSignature,
      second: { ...second, signatures: [] },
      secondSignature: ev.secondSignature
    }
    assert.equal(
      reason(verifyEvidence(notConflicting, s0.pool.poolId)),
      'the statements do not conflict: no common spent outpoint'
    )
    const swapped = {
      ...ev,
      first: ev.second,
      second: ev.first,
      firstSignature: ev.secondSignature,
      secondSignature: ev.firstSignature
    }
    assert.match(
      reason(verifyEvidence(swapped, s0.pool.poolId)),
      /^malformed evidence: .*second: statements not in canonical order/
    )
    assert.throws(() => makeEvidence(a, c, A), /has not signed both statements/)
    // Only the accused member's own signatures count: B's signature on a statement with A proves nothing about A.
    const onlyB = signStatementBy(buildPartitionStatement(s0, [A, B], [0n, 300_000n], s0.heightT), [B])
    assert.throws(() => makeEvidence(onlyB, b, A), /has not signed both statements/)
  })
})
