/**
 * Kick-out continuations: the third kind of pool reference, its encoding, and the pool that
 * continues after a kick-out.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  DecodeError,
  MAX_MEMBERS,
  MAX_POOL_REF_DEPTH,
  RuleError,
  Writer,
  applyPayment,
  decodePoolRef,
  decodeSignedState,
  decodeState,
  describePoolRef,
  encodePoolRef,
  encodeSignedState,
  encodeState,
  equalBytes,
  equalPoolRefs,
  initialState,
  kickout,
  kickoutContinuation,
  partitionInitialState,
  poolRefDepth,
  stateHash,
  sumSats,
  totalOutputSats,
  txid,
  verifySignedState,
  writePoolRef,
  type PoolRef,
  type PoolState
} from '../../protocol/index.js'
import {
  arbGenesis,
  arbPaymentChoice,
  fill32,
  paymentFrom,
  partitionOf,
  signAllState,
  testGenesis
} from './fixtures.js'

const g = testGenesis(4, [100_000n, 200_000n, 300_000n, 400_000n], { kickoutDelayBlocks: 10, creationHeight: 1_000 })
const s0 = initialState(g)
const [A, B, C, D] = s0.pool.members as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
const KICK_HEIGHT = 1_011

function chainOf(depth: number): PoolRef {
  let ref: PoolRef = { kind: 'partition', statementId: fill32(7) }
  for (let i = 0; i < depth; i++)
    ref = { kind: 'continuation', parent: ref, parentStateNumber: i, evictedIndex: i % MAX_MEMBERS }
  return ref
}

describe('kick-out continuations', () => {
  describe('pool reference kind 2', () => {
    it('round-trips nested continuations, alone and inside a state', () => {
      for (const ref of [
        chainOf(0),
        chainOf(1),
        chainOf(5),
        { kind: 'continuation', parent: { kind: 'root' }, parentStateNumber: 0xffff_ffff, evictedIndex: 255 } as PoolRef
      ]) {
        const bytes = encodePoolRef(ref)
        const back = decodePoolRef(bytes)
        assert.deepStrictEqual(back, ref)
        assert.ok(equalPoolRefs(back, ref))
        assert.deepStrictEqual(encodePoolRef(back), bytes)
      }
      const c = kickoutContinuation(s0, B, KICK_HEIGHT)
      const state = c.state!
      assert.deepStrictEqual(decodeState(encodeState(state)), state)
    })

    it('has the documented layout: 2 | parent ref | parentStateNumber u32 | evictedIndex varint', () => {
      const ref: PoolRef = { kind: 'continuation', parent: { kind: 'root' }, parentStateNumber: 5, evictedIndex: 3 }
      assert.deepStrictEqual([...encodePoolRef(ref)], [2, 0, 5, 0, 0, 0, 3])
    })

    it('tells references apart by parent, state number and evicted index', () => {
      const base: PoolRef = { kind: 'continuation', parent: { kind: 'root' }, parentStateNumber: 5, evictedIndex: 3 }
      assert.ok(!equalPoolRefs(base, { ...base, parentStateNumber: 6 }))
      assert.ok(!equalPoolRefs(base, { ...base, evictedIndex: 2 }))
      assert.ok(!equalPoolRefs(base, { ...base, parent: { kind: 'partition', statementId: fill32(1) } }))
      assert.ok(!equalPoolRefs(base, { kind: 'root' }))
      assert.ok(!equalPoolRefs({ kind: 'root' }, base))
      assert.equal(poolRefDepth(chainOf(4)), 4)
    })

    it('describes a continuation by its chain of kick-outs, shortening long chains', () => {
      assert.equal(
        describePoolRef({ kind: 'continuation', parent: { kind: 'root' }, parentStateNumber: 5, evictedIndex: 3 }),
        'continuation of root pool after kick-out of member 3 at state 5'
      )
      const long = describePoolRef(chainOf(40))
      assert.match(
        long,
        /^continuation of partition 0707070707070707 after kick-out of member 0 at state 0, … 38 more …, after kick-out of member 39 at state 39$/
      )
    })

    it('refuses an evicted index of 1,024 or more, a nesting deeper than the limit, and unknown kinds', () => {
      assert.throws(
        () => decodePoolRef(Uint8Array.of(2, 0, 0, 0, 0, 0, 0xfd, 0x00, 0x04)),
        (e: unknown) =>
          e instanceof DecodeError && /evictedIndex: 1024 is not a member index below 1024/.test(e.message)
      )
      assert.throws(
        () =>
          encodePoolRef({ kind: 'continuation', parent: { kind: 'root' }, parentStateNumber: 0, evictedIndex: 1024 }),
        /evictedIndex: 1024 is not a member index/
      )
      assert.doesNotThrow(() => decodePoolRef(encodePoolRef(chainOf(MAX_POOL_REF_DEPTH))))
      assert.throws(() => encodePoolRef(chainOf(MAX_POOL_REF_DEPTH + 1)), /continuations nested more than 1024 deep/)
      // Hand-build an over-deep encoding: the decoder stops at the limit without recursing further.
      const w = new Writer()
      for (let i = 0; i <= MAX_POOL_REF_DEPTH; i++) w.u8(2)
      w.u8(0)
      for (let i = 0; i <= MAX_POOL_REF_DEPTH; i++) w.u32(0).varint(0)
      assert.throws(
        () => decodePoolRef(w.finish()),
        (e: unknown) => e instanceof DecodeError && /continuations nested more than 1024 deep/.test(e.message)
      )
      assert.throws(
        () => decodePoolRef(Uint8Array.of(3)),
        /unknown pool reference kind 3 \(0 = root, 1 = partition, 2 = continuation\)/
      )
      const sw = new Writer()
      writePoolRef(sw, { kind: 'root' })
      assert.deepStrictEqual([...sw.finish()], [0])
    })
  })

  describe('derivation', () => {
    it('drops the evicted member, funds from the remainder of K(N,u), starts at the kick height', () => {
      const s1 = applyPayment(s0, { payer: D, payee: A, amountSats: 50_000n }, 1_005)
      const c = kickoutContinuation(s1, B, 1_016)
      const k = kickout(s1, B)
      assert.deepStrictEqual(c.kickout, k)
      assert.equal(c.evictedIndex, 1)
      assert.equal(c.exitSats, 200_000n)
      const pool = c.pool!
      assert.deepStrictEqual(pool.ref, {
        kind: 'continuation',
        parent: { kind: 'root' },
        parentStateNumber: 1,
        evictedIndex: 1
      })
      assert.deepStrictEqual(pool.members, [A, C, D])
      assert.deepStrictEqual(pool.funding, { txid: txid(k.tx), vout: 1 })
      assert.equal(pool.totalSats, k.tx.outputs[1]!.valueSats)
      assert.equal(pool.kickoutDelayBlocks, 10)
      assert.deepStrictEqual(c.state, {
        pool,
        stateNumber: 0,
        heightT: 1_016,
        balances: [150_000n, 300_000n, 350_000n]
      })
    })

    it('updates with the remaining members only', () => {
      const c = kickoutContinuation(s0, B, KICK_HEIGHT)
      const s1 = applyPayment(c.state!, { payer: C, payee: A, amountSats: 1n }, KICK_HEIGHT)
      const signed = signAllState(s1)
      assert.equal(signed.signatures.length, 3)
      assert.deepStrictEqual(verifySignedState(signed), { ok: true })
      assert.deepStrictEqual(decodeSignedState(encodeSignedState(signed)), signed)
      // distinct from the parent's states: another pool, another hash
      assert.ok(!equalBytes(stateHash(c.state!), stateHash(s0)))
    })

    it('continues a partition, and a continuation again', () => {
      const { stmt, sub } = partitionOf(s0, [A, C, D], [100_000n, 300_000n, 400_000n])
      const c1 = kickoutContinuation(sub, C, KICK_HEIGHT)
      assert.deepStrictEqual(c1.pool!.members, [A, D])
      const c2 = kickoutContinuation(c1.state!, A, KICK_HEIGHT + 11)
      assert.deepStrictEqual(c2.pool!.members, [D])
      assert.equal(poolRefDepth(c2.pool!.ref), 2)
      assert.equal(c2.state!.balances[0], 400_000n)
      assert.deepStrictEqual(decodeState(encodeState(c2.state!)), c2.state)
      assert.deepStrictEqual(partitionInitialState(s0.pool, stmt).pool.ref, sub.pool.ref)
    })

    it('continues nothing when the evicted member held the whole pool', () => {
      const lone = initialState(testGenesis(2, [0n, 5_000n], { kickoutDelayBlocks: 10, creationHeight: 1_000 }))
      const c = kickoutContinuation(lone, lone.pool.members[1]!, KICK_HEIGHT)
      assert.equal(c.pool, null)
      assert.equal(c.state, null)
      assert.equal(c.exitSats, 5_000n)
      assert.equal(c.kickout.tx.outputs.length, 1)
    })

    it('refuses a kick height before T + X + 1, a height at the locktime threshold, and a non-member', () => {
      assert.throws(
        () => kickoutContinuation(s0, B, KICK_HEIGHT - 1),
        (e: unknown) =>
          e instanceof RuleError &&
          e.code === 'height' &&
          /^the kick-out of member 1 \([0-9a-f]{16}\) from state 0 of the root pool is valid from height 1011 \(T 1000 \+ X 10 \+ 1\); the chain is at 1010$/.test(
            e.message
          )
      )
      assert.throws(
        () => kickoutContinuation(s0, B, 499_999_995),
        (e: unknown) => e instanceof RuleError && /reaches the locktime threshold/.test(e.message)
      )
      assert.throws(
        () => kickoutContinuation(s0, fill32(9), KICK_HEIGHT),
        (e: unknown) => e instanceof RuleError && e.code === 'not-a-member'
      )
    })

    it('conserves value: the evicted balance plus the continuation total is the parent total', () => {
      fc.assert(
        fc.property(
          arbGenesis(5),
          fc.array(arbPaymentChoice, { maxLength: 3 }),
          fc.nat(),
          fc.nat(100),
          (genesis, payments, pick, extra) => {
            let s: PoolState = initialState(genesis)
            for (const p of payments) {
              const pay = paymentFrom(s, p.payer, p.payee, p.fraction)
              if (pay) s = applyPayment(s, pay, s.heightT + 1)
            }
            const member = s.pool.members[pick % s.pool.members.length]!
            const height = s.heightT + s.pool.kickoutDelayBlocks + 1 + extra
            const c = kickoutContinuation(s, member, height)
            assert.equal(totalOutputSats(c.kickout.tx), s.pool.totalSats)
            const rest = c.pool === null ? 0n : c.pool.totalSats
            assert.equal(c.exitSats + rest, s.pool.totalSats)
            if (c.state !== null) {
              assert.equal(sumSats(c.state.balances), c.state.pool.totalSats)
              assert.equal(c.state.pool.members.length, s.pool.members.length - 1)
              assert.deepStrictEqual(decodeState(encodeState(c.state)), c.state)
            } else {
              assert.equal(c.exitSats, s.pool.totalSats)
            }
          }
        ),
        { numRuns: 200 }
      )
    })
  })
})
