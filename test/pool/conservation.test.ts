/**
 * Random sequences of valid and invalid entries: after every entry the value the pools hold plus
 * what left on chain is the genesis total, and the board's records agree with one another.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encodeGenesisEntry, encodeStateEntry } from '../../board/entries.js'
import { PoolBoard, type PoolView } from '../../board/pool-board.js'
import { SignatureCache } from '../../board/signature-cache.js'
import {
  buildPartitionStatement,
  findEquivocations,
  initialState,
  sumSats,
  type PoolState
} from '../../protocol/index.js'
import {
  Harness,
  blocksEntry,
  evidenceEntry,
  genesisEntry,
  kickoutEntry,
  nextState,
  signAllState,
  signStatementBy,
  smallGenesis,
  statementEntry
} from './helpers.js'

interface Step {
  op: number
  a: number
  b: number
  c: number
}

const arbStep: fc.Arbitrary<Step> = fc.record({ op: fc.nat(13), a: fc.nat(1_000), b: fc.nat(1_000), c: fc.nat(1_000) })

function pick<T>(list: readonly T[], n: number): T | undefined {
  return list.length === 0 ? undefined : list[n % list.length]
}

/** Balances summing to `total`, split among `n` by the choice `c`. */
function split(total: bigint, n: number, c: number): bigint[] {
  const out = Array.from({ length: n }, () => 0n)
  let rest = total
  for (let i = 0; i < n - 1; i++) {
    const share = (rest * BigInt((c * (i + 7)) % 100)) / 100n
    out[i] = share
    rest -= share
  }
  out[n - 1] = rest
  return out
}

/** Builds the entry for one random step from the board's current state (valid or deliberately not). */
function entryFor(h: Harness, step: Step, old: PoolState[]): Uint8Array {
  const board = h.board
  const pools = board.poolList()
  const open = pools.filter((p) => p.status === 'open')
  const partitionable = pools.filter((p) => p.status !== 'closed')
  const state = (v: PoolView): PoolState => h.state(v.ref)
  const free = (v: PoolView): number[] =>
    v.members.map((m, i) => (m.partitionedBy === null ? i : -1)).filter((i) => i >= 0)
  switch (step.op) {
    case 0:
    case 1:
    case 2:
    case 11: {
      // updates: valid, forged, wrong number, on any pool
      const v = step.op === 11 ? pick(pools, step.a) : pick(open, step.a)
      if (v === undefined) break
      const s = state(v)
      const n = s.pool.members.length
      const payer = s.balances.findIndex((b, i) => b > 0n && i >= step.b % n)
      if (n < 2 || payer < 0) break
      const payee = (payer + 1 + (step.c % (n - 1))) % n
      const next = nextState(s, payer, payee, 1n + (s.balances[payer] * BigInt(step.c % 100)) / 100n, board.chainHeight)
      const signed = signAllState(step.op === 2 ? { ...next, stateNumber: next.stateNumber + 1 } : next)
      if (step.op === 1) signed.signatures[step.c % n] = new Uint8Array(64)
      old.push(s)
      return encodeStateEntry(signed)
    }
    case 3: {
      // a partition among free members of a pool that can be partitioned
      const v = pick(partitionable, step.a)
      if (v === undefined) break
      const s = state(v)
      const candidates = free(v).filter((_, j) => j === 0 || ((step.b >> j) & 1) === 1)
      if (candidates.length === 0) break
      const total = sumSats(candidates.map((i) => s.balances[i]))
      const stmt = buildPartitionStatement(
        s,
        candidates.map((i) => s.pool.members[i]),
        split(total, candidates.length, step.c),
        board.chainHeight
      )
      return statementEntry(signStatementBy(stmt))
    }
    case 4: {
      // a statement spending an already partitioned balance, signed by all its actives
      const v = pick(
        pools.filter((p) => p.status === 'frozen'),
        step.a
      )
      if (v === undefined) break
      const s = state(v)
      const spent = v.members.map((m, i) => (m.partitionedBy !== null ? i : -1)).filter((i) => i >= 0)
      const actives = [...new Set([pick(spent, step.b) ?? 0, step.c % s.pool.members.length])]
      const total = sumSats(actives.map((i) => s.balances[i]))
      const stmt = buildPartitionStatement(
        s,
        actives.map((i) => s.pool.members[i]),
        split(total, actives.length, step.c + 1),
        board.chainHeight
      )
      return statementEntry(signStatementBy(stmt))
    }
    case 5: {
      // a statement on a state that is no longer current
      const s = pick(old, step.a)
      if (s === undefined) break
      const stmt = buildPartitionStatement(s, [s.pool.members[0]], [s.balances[0]], s.heightT)
      return statementEntry(signStatementBy(stmt))
    }
    case 6:
    case 12:
      return blocksEntry(1 + (step.a % 30))
    case 7:
    case 13: {
      // a kick-out, often before its time
      const v = pick(open, step.a)
      if (v === undefined) break
      return kickoutEntry(v.ref, state(v).stateNumber, v.members[step.b % v.members.length].key)
    }
    case 8:
      return Uint8Array.from({ length: step.b % 40 }, (_, i) => (i === 0 ? 1 : (step.c * (i + 3)) & 0xff))
    case 9: {
      // evidence: again what the board has, or a fresh one made off the board (sometimes forged)
      const known = board.evidence()
      if (known.length > 0 && step.b % 2 === 0) return evidenceEntry(known[step.a % known.length].evidence)
      const v = pick(partitionable, step.a)
      if (v === undefined) break
      const s = state(v)
      const i = step.c % s.pool.members.length
      const j = (i + 1) % s.pool.members.length
      if (i === j) break
      const key = s.pool.members[i]
      const x = signStatementBy(buildPartitionStatement(s, [key], [s.balances[i]], s.heightT), [key])
      const y = signStatementBy(
        buildPartitionStatement(s, [key, s.pool.members[j]], [0n, s.balances[i] + s.balances[j]], s.heightT),
        [key]
      )
      const ev = findEquivocations(x, y)[0]
      return evidenceEntry(step.b % 3 === 0 ? { ...ev, firstSignature: ev.secondSignature } : ev)
    }
    case 10:
      return genesisEntry(smallGenesis(3))
  }
  return blocksEntry(1)
}

describe('the pool board under random entries', () => {
  it('conserves value after every entry, and its records always agree', function () {
    this.timeout(300_000)
    const cache = new SignatureCache()
    const genesis = smallGenesis(4)
    const total = sumSats(genesis.balances)
    const seen = new Map<string, number>()
    fc.assert(
      fc.property(fc.array(arbStep, { minLength: 4, maxLength: 16 }), (steps) => {
        const h = new Harness(new PoolBoard({ signatureCache: cache }))
        h.accept(genesisEntry(genesis))
        const old: PoolState[] = []
        for (const step of steps) {
          const { result } = h.push(entryFor(h, step, old))
          const tag = `${result.kind} ${result.outcome}`
          seen.set(tag, (seen.get(tag) ?? 0) + 1)
          // the board's own check covers conservation too; this one holds it to the test's own total
          assert.equal(h.board.valueHeldSats() + h.board.onChainExitSats(), total)
          h.board.checkConsistency()
        }
        // every node applying the same log reaches the same state; a restore reaches it too
        const again = new PoolBoard({ signatureCache: cache })
        for (const e of h.log.entries) again.apply(e)
        assert.deepStrictEqual(again.snapshot(), h.board.snapshot())
        assert.deepStrictEqual(PoolBoard.restore(h.board.snapshot()).snapshot(), h.board.snapshot())
      }),
      { numRuns: 50 }
    )
    // the generator reaches every kind of entry, both ways
    for (const tag of [
      'state accepted',
      'state rejected',
      'statement accepted',
      'statement rejected',
      'evidence accepted',
      'evidence rejected',
      'kickout accepted',
      'kickout rejected',
      'blocks accepted',
      'genesis rejected',
      'unknown rejected'
    ]) {
      assert.ok((seen.get(tag) ?? 0) > 0, `no ${tag} entry in ${JSON.stringify([...seen])}`)
    }
  })

  it('a forged genesis never opens a pool', () => {
    const g = smallGenesis(3)
    const signed = signAllState(initialState(g))
    signed.signatures[0] = signed.signatures[1]
    const h = new Harness()
    h.reject(encodeGenesisEntry(g, signed), /signature of member 0/)
    assert.equal(h.board.genesis, null)
    assert.deepStrictEqual(h.board.poolList(), [])
  })
})
