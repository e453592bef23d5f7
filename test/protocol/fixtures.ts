/**
 * Shared fixtures and fast-check generators for the protocol tests.
 * Keys are deterministic (derived from fixed seeds) so every failure replays.
 */
import fc from 'fast-check'
import {
  buildPartitionStatement,
  compareBytes,
  makeGenesis,
  partitionInitialState,
  publicKeyOf,
  secretKeyFromSeed,
  signStatement,
  signState,
  withStatementSignature,
  type Genesis,
  type PartitionStatement,
  type Payment,
  type PoolState,
  type SignedState
} from '../../protocol/index.js'

export interface TestMember {
  secretKey: Uint8Array
  publicKey: Uint8Array
  peerId: string
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** Ten deterministic members, sorted by public key. */
export const MEMBERS: TestMember[] = Array.from({ length: 10 }, (_, i) => {
  const secretKey = secretKeyFromSeed(new TextEncoder().encode(`test member ${i}`))
  let peerId = '12D3KooW'
  for (let j = 0; j < 44; j++) peerId += BASE58[(i * 7 + j * 13) % BASE58.length]
  return { secretKey, publicKey: publicKeyOf(secretKey), peerId }
}).sort((a, b) => compareBytes(a.publicKey, b.publicKey))

export function memberByKey(key: Uint8Array): TestMember {
  const m = MEMBERS.find((x) => compareBytes(x.publicKey, key) === 0)
  if (!m) throw new Error('unknown test key')
  return m
}

export function fill32(b: number): Uint8Array {
  return new Uint8Array(32).fill(b)
}

/** A genesis over the first `n` test members with the given balances (default 100k sats each). */
export function testGenesis(
  n = 4,
  balances?: bigint[],
  opts: { kickoutDelayBlocks?: number; creationHeight?: number } = {}
): Genesis {
  return makeGenesis({
    members: MEMBERS.slice(0, n).map((m, i) => ({
      key: m.publicKey,
      peerId: m.peerId,
      balanceSats: balances?.[i] ?? 100_000n
    })),
    funding: { txid: fill32(0xab), vout: 1 },
    kickoutDelayBlocks: opts.kickoutDelayBlocks ?? 144,
    creationHeight: opts.creationHeight ?? 800_000
  })
}

export function signAllState(state: PoolState): SignedState {
  return { state, signatures: state.pool.members.map((k) => signState(state, memberByKey(k).secretKey)) }
}

/** Sign a statement by every active (or by the given keys). */
export function signStatementBy(
  stmt: PartitionStatement,
  keys: readonly Uint8Array[] = stmt.actives
): PartitionStatement {
  let s = stmt
  for (const k of keys) s = withStatementSignature(s, k, signStatement(stmt, memberByKey(k).secretKey))
  return s
}

// ---- generators ----

export const arbBytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
export const arbBytes64 = fc.uint8Array({ minLength: 64, maxLength: 64 })
export const arbSats = fc.bigInt({ min: 0n, max: 10_000_000n })

/** A genesis of 2..maxN test members with small random balances and parameters. */
export function arbGenesis(maxN = 5): fc.Arbitrary<Genesis> {
  return fc
    .record({
      idx: fc.uniqueArray(fc.integer({ min: 0, max: MEMBERS.length - 1 }), { minLength: 2, maxLength: maxN }),
      balances: fc.array(arbSats, { minLength: maxN, maxLength: maxN }),
      txid: arbBytes32,
      vout: fc.integer({ min: 0, max: 0xffff_ffff }),
      x: fc.integer({ min: 1, max: 52_560 }),
      h: fc.integer({ min: 0, max: 900_000 })
    })
    .map(({ idx, balances, txid, vout, x, h }) =>
      makeGenesis({
        members: idx.map((i, j) => ({
          key: MEMBERS[i]!.publicKey,
          peerId: MEMBERS[i]!.peerId,
          balanceSats: balances[j]!
        })),
        funding: { txid, vout },
        kickoutDelayBlocks: x,
        creationHeight: h
      })
    )
}

/** A payment valid in `state` built from random choices (null if nobody can pay). */
export function paymentFrom(state: PoolState, payerPick: number, payeePick: number, fraction: number): Payment | null {
  const n = state.pool.members.length
  const payers = state.balances.map((b, i) => ({ b, i })).filter((x) => x.b > 0n)
  if (payers.length === 0 || n < 2) return null
  const payer = payers[payerPick % payers.length]!
  let payee = payeePick % n
  if (payee === payer.i) payee = (payee + 1) % n
  const amount = 1n + ((payer.b - 1n) * BigInt(Math.floor(fraction * 1000))) / 1000n
  return { payer: state.pool.members[payer.i]!, payee: state.pool.members[payee]!, amountSats: amount }
}

export const arbPaymentChoice = fc.record({
  payer: fc.nat(1000),
  payee: fc.nat(1000),
  fraction: fc.double({ min: 0, max: 1, noNaN: true })
})

/**
 * Random partition choices for a state: which members are active and how the actives' sum is
 * redistributed (`cuts` in [0,1] turned into balances that sum exactly to the actives' total).
 */
export function partitionFrom(
  state: PoolState,
  pick: number[],
  cuts: number[]
): { actives: Uint8Array[]; newBalances: bigint[] } {
  const n = state.pool.members.length
  const chosen = [...new Set(pick.map((p) => p % n))]
  if (chosen.length === 0) chosen.push(0)
  const total = chosen.reduce((s, i) => s + state.balances[i]!, 0n)
  const weights = chosen.map((_, j) => BigInt(Math.floor((cuts[j % Math.max(cuts.length, 1)] ?? 0.5) * 1000)) + 1n)
  const wsum = weights.reduce((a, b) => a + b, 0n)
  const newBalances = weights.map((w) => (total * w) / wsum)
  const rest = total - newBalances.reduce((a, b) => a + b, 0n)
  newBalances[0] = newBalances[0]! + rest
  return { actives: chosen.map((i) => state.pool.members[i]!), newBalances }
}

export const arbPartitionChoice = fc.record({
  pick: fc.array(fc.nat(1000), { minLength: 1, maxLength: 4 }),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 4 })
})

/** Sub-state 0 of a fully built partition. */
export function partitionOf(
  parent: PoolState,
  actives: Uint8Array[],
  newBalances: bigint[],
  heightT = parent.heightT
): { stmt: PartitionStatement; sub: PoolState } {
  const stmt = buildPartitionStatement(parent, actives, newBalances, heightT)
  return { stmt, sub: partitionInitialState(parent.pool, stmt) }
}
