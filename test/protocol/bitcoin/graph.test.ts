/**
 * The pool's transactions on chain (docs/protocol.md section 9): for pools of 2, 4 and 16
 * members, after a payment, a partition with two offline, a nested partition and a kick-out, every
 * member's branch is exported and the checker verifies every input of it; tampered witnesses,
 * sequences, amounts, fees and locktimes are refused naming what is wrong.
 */
import assert from 'node:assert/strict'
import { Transaction } from '@scure/btc-signer'
import { reverseBytes, toHex } from '../../../protocol/index.js'
import {
  DEFAULT_GRAPH_PARAMS,
  ExportError,
  GraphError,
  adoptSignatures,
  checkTransaction,
  decodeTaprootAddress,
  exportBranch,
  firstChangedLayer,
  graphTransactions,
  layerWaitBlocks,
  memberVout,
  ownersOutputKey,
  parseTransaction,
  partitionTx,
  poolAddress,
  serializeSigned,
  signOwnInput,
  anchorChild,
  signPartitionInput,
  rootChainState,
  checkGraph,
  stateGraph,
  stateSigningTxs,
  verifyChainEquivocation,
  type ChainState,
  type GraphTx,
  type Prevout,
  type StateGraph
} from '../../../protocol/bitcoin/index.js'
import { chainMembers, rootState, secretOf, signRound, type ChainMember } from './helpers.js'

interface Level {
  state: ChainState
  graph: StateGraph
}

/** Every input of every transaction of `branch` verifies, and the branch is in broadcast order. */
function assertBranch(root: ChainState, branch: GraphTx[], member: Uint8Array): void {
  const ex = exportBranch('regtest', root.pool.funding, branch)
  assert.equal(ex.transactions.length, branch.length)
  assert.equal(ex.funding.txid, toHex(reverseBytes(root.pool.funding.txid)))
  for (const t of ex.transactions) {
    const raw = Uint8Array.from(Buffer.from(t.hex, 'hex'))
    const spends: Prevout[] = t.spends.map((s) => ({
      txid: Uint8Array.from(Buffer.from(s.txid, 'hex')).reverse(),
      vout: s.vout,
      amountSats: BigInt(s.amountSats),
      scriptPubKey: Uint8Array.from(Buffer.from(s.scriptPubKey, 'hex'))
    }))
    const v = checkTransaction(raw, spends, { expectedFeeSats: 0n })
    assert.ok(v.ok, v.ok ? '' : v.reason)
    assert.equal(v.waitBlocks, t.waitBlocks)
    assert.ok(t.spends.every((sp) => Number.isSafeInteger(sp.amountSats)))
  }
  assert.deepEqual(
    ex.transactions.map((t) => t.label),
    branch.map((t) => t.label)
  )
  // Round trip through JSON, as `pool exit --export --json` will print it.
  assert.deepEqual(JSON.parse(JSON.stringify(ex)), ex)
  // The last transaction pays the member (alone or within the pool it ends in).
  const last = branch[branch.length - 1]!
  assert.ok(
    last.outputs.some((o) => o.owners?.some((k) => toHex(k) === toHex(member))),
    `${last.label} pays the member`
  )
}

/** The root part of a branch: kickoff, layers, then `tail` (the state or a kick-out). */
function rootPath(l: Level, tail: GraphTx): GraphTx[] {
  return [l.graph.kickoff, ...l.graph.layers, tail]
}

function pay(s: ChainState, from: number, to: number, amount: bigint): ChainState {
  const balances = [...s.balances]
  balances[from]! -= amount
  balances[to]! += amount
  return { ...s, stateNumber: s.stateNumber + 1, heightT: s.heightT + 1, balances }
}

/** A signed partition among `actives` of level `l`: the sub-pool's state 0 graph first, then the partition transaction. */
function partition(
  ms: ChainMember[],
  l: Level,
  actives: Uint8Array[],
  heightT: number
): { tx: GraphTx; sub: Level | null } {
  const p = partitionTx(
    l.state,
    l.graph,
    actives,
    actives.map((a) => l.state.balances[l.state.pool.members.findIndex((k) => toHex(k) === toHex(a))]!),
    heightT
  )
  let sub: Level | null = null
  if (p.pool.members.length >= 2) {
    sub = { state: p.state, graph: stateGraph(p.state) }
    // No active signs its input before the sub-pool's graph is signed.
    assert.throws(() => signPartitionInput(p, sub!.graph, secretOf(ms, actives[0]!)), /input 0 is not signed/)
    signRound(ms, graphTransactions(sub.graph))
  }
  for (const a of actives) signPartitionInput(p, sub?.graph ?? null, secretOf(ms, a))
  return { tx: p.tx, sub }
}

for (const n of [2, 4, 16]) {
  describe(`a pool of ${n} members on chain`, function () {
    this.timeout(120_000)
    const ms = chainMembers(n)
    const keys = ms.map((m) => m.publicKey)
    const balances = keys.map((_, i) => BigInt(100_000 * (i + 1)))
    let l0: Level
    let l1: Level

    before(() => {
      const s0 = rootState(ms, balances)
      l0 = { state: s0, graph: stateGraph(s0) }
      signRound(ms, stateSigningTxs(s0, l0.graph))
      const s1 = pay(s0, 0, 1, 30_000n)
      l1 = { state: s1, graph: stateGraph(s1) }
      // State 1 signs only its changed layers; the kickoff and the others are state 0's.
      const toSign = stateSigningTxs(s1, l1.graph)
      assert.ok(toSign.length < graphTransactions(l1.graph).length)
      signRound(ms, toSign)
      assert.ok(
        adoptSignatures(graphTransactions(l0.graph), graphTransactions(l1.graph)) >=
          1 + firstChangedLayer(DEFAULT_GRAPH_PARAMS, 1)
      )
    })

    it("after a payment, every member's branch verifies, and the newer state waits less than the older", () => {
      for (const k of keys) assertBranch(l0.state, rootPath(l1, l1.graph.state), k)
      assert.equal(toHex(l1.graph.kickoff.txid), toHex(l0.graph.kickoff.txid))
      const d = firstChangedLayer(DEFAULT_GRAPH_PARAMS, 1)
      assert.ok(l1.graph.layers[d]!.waitBlocks + DEFAULT_GRAPH_PARAMS.stepBlocks <= l0.graph.layers[d]!.waitBlocks)
      assert.equal(l1.graph.layers[d]!.waitBlocks, layerWaitBlocks(DEFAULT_GRAPH_PARAMS, 1))
      // Both states' layers spend the same output: only one can confirm.
      assert.equal(
        toHex(l1.graph.layers[d]!.inputs[0]!.prevout.txid),
        toHex(l0.graph.layers[d]!.inputs[0]!.prevout.txid)
      )
      assert.equal(
        l1.graph.state.outputs.find((o) => o.owners?.length === 1 && toHex(o.owners[0]!) === toHex(keys[1]!))!
          .amountSats,
        balances[1]! + 30_000n
      )
    })

    it(
      n > 2
        ? 'a partition with two offline: actives and passives all have a branch that verifies'
        : 'a partition with one offline: both members have a branch that verifies',
      () => {
        const offline = n > 2 ? 2 : 1
        const actives = keys.slice(0, n - offline)
        const { tx, sub } = partition(ms, l1, actives, l1.state.heightT + 1)
        // Two actives' outputs are outputs of one transaction: the partition spends them together.
        assert.ok(tx.inputs.every((i) => toHex(i.prevout.txid) === toHex(l1.graph.state.txid)))
        for (const a of actives)
          assertBranch(
            l0.state,
            [
              ...rootPath(l1, l1.graph.state),
              tx,
              ...(sub ? [sub.graph.kickoff, ...sub.graph.layers, sub.graph.state] : [])
            ],
            a
          )
        for (const p of keys.slice(n - offline)) assertBranch(l0.state, rootPath(l1, l1.graph.state), p)
      }
    )

    it('a nested partition: a partition of a partition verifies to the end', () => {
      const actives = keys.slice(0, Math.max(1, n - 2))
      const { tx, sub } = partition(ms, l1, actives, l1.state.heightT + 1)
      if (sub === null) {
        // One active: the sub-pool is that member's own output; a nested partition is not possible.
        assert.throws(() => partitionTx(l1.state, l1.graph, [keys[0]!, keys[0]!], [1n, 1n], 0), GraphError)
        return
      }
      const nestedActives = sub.state.pool.members.slice(0, Math.max(1, Math.floor(sub.state.pool.members.length / 2)))
      const nested = partition(ms, sub, [...nestedActives], sub.state.heightT + 1)
      const subPath = [sub.graph.kickoff, ...sub.graph.layers, sub.graph.state]
      const tail = nested.sub ? [nested.sub.graph.kickoff, ...nested.sub.graph.layers, nested.sub.graph.state] : []
      for (const a of nestedActives)
        assertBranch(l0.state, [...rootPath(l1, l1.graph.state), tx, ...subPath, nested.tx, ...tail], a)
    })

    it('a kick-out: the evicted member and every remaining one have a branch that verifies, locked until T + X', () => {
      const u = n - 1
      const k = l1.graph.kickouts[u]!
      assert.equal(k.kickout.lockTime, l1.state.heightT + l1.state.pool.kickoutDelayBlocks)
      assert.equal(k.kickout.notBeforeHeight, k.kickout.lockTime + 1)
      assertBranch(l0.state, rootPath(l1, k.kickout), keys[u]!)
      for (const r of keys.slice(0, u)) {
        const tail = k.continuation
          ? [k.continuation.graph.kickoff, ...k.continuation.graph.layers, k.continuation.graph.state]
          : []
        assertBranch(l0.state, [...rootPath(l1, k.kickout), ...tail], r)
      }
      const ex = exportBranch('regtest', l0.state.pool.funding, rootPath(l1, k.kickout))
      assert.equal(ex.transactions.at(-1)!.notBeforeHeight, k.kickout.lockTime + 1)
      const raw = serializeSigned(k.kickout)
      const early = checkTransaction(
        raw,
        k.kickout.inputs.map((i) => i.prevout),
        { blockHeight: k.kickout.lockTime }
      )
      assert.ok(
        !early.ok && /nLockTime \d+: not final in a block at height/.test(early.reason),
        early.ok ? '' : early.reason
      )
      assert.ok(
        checkTransaction(
          raw,
          k.kickout.inputs.map((i) => i.prevout),
          { blockHeight: k.kickout.lockTime + 1 }
        ).ok
      )
    })
  })
}

describe('the checker refuses tampered transactions, naming what is wrong', function () {
  this.timeout(60_000)
  const ms = chainMembers(3, 'tamper')
  const s = rootState(ms, [50_000n, 60_000n, 70_000n])
  const g = stateGraph(s)
  const layer = g.layers[0]!
  const spends = layer.inputs.map((i) => i.prevout)
  let raw: Uint8Array
  before(() => {
    signRound(ms, graphTransactions(g))
    raw = serializeSigned(layer)
  })
  const refusal = (r: Uint8Array, sp: Prevout[] = spends, opts = {}): string => {
    const v = checkTransaction(r, sp, opts)
    assert.ok(!v.ok, 'expected a refusal')
    return v.reason
  }

  it('accepts the genuine one, with its relative lock reported and enforced', () => {
    const v = checkTransaction(raw, spends, { expectedFeeSats: 0n })
    assert.ok(v.ok && v.waitBlocks === layer.waitBlocks && v.waitBlocks > 0)
    assert.match(
      refusal(raw, spends, { prevoutConfirmations: [layer.waitBlocks - 1] }),
      /input 0: relative timelock of \d+ blocks, the spent output has \d+ confirmations/
    )
  })

  it('a flipped witness byte', () => {
    const t = new Uint8Array(raw)
    t[t.length - 10] ^= 1
    assert.match(refusal(t), /input 0: signature does not verify against output key/)
  })

  it('a changed nSequence (the signature commits to it)', () => {
    const tx = Transaction.fromRaw(raw, { allowUnknownOutputs: true })
    tx.updateInput(0, { sequence: 0 }, true)
    assert.match(refusal(tx.toBytes(true, true)), /input 0: signature does not verify/)
  })

  it('a different spent amount or script (the signature commits to them)', () => {
    assert.match(
      refusal(raw, [{ ...spends[0]!, amountSats: spends[0]!.amountSats + 1n }]),
      /input 0: signature does not verify/
    )
    const other = ownersOutputKey([ms[0]!.publicKey])
    assert.match(
      refusal(raw, [{ ...spends[0]!, scriptPubKey: Uint8Array.of(0x51, 0x20, ...other) }]),
      /input 0: signature does not verify against output key/
    )
  })

  it('another outpoint than the one given, a missing prevout, trailing bytes', () => {
    assert.match(
      refusal(raw, [{ ...spends[0]!, vout: 1 }]),
      /input 0: spends [0-9a-f]{64}:0, but the output given is [0-9a-f]{64}:1/
    )
    assert.match(refusal(raw, []), /spends 1 outputs, 0 given/)
    assert.match(refusal(Uint8Array.of(...raw, 0)), /malformed transaction: transaction: 1 trailing bytes/)
  })

  it('a fee, an output below dust, a time-based lock: refused by amount and relay rules', () => {
    assert.ok(memberVout(g, ms[0]!.publicKey) >= 0)
    const p = partitionTx(s, g, [ms[0]!.publicKey], [50_000n], s.heightT)
    const withFee: GraphTx = {
      ...p.tx,
      outputs: [{ ...p.tx.outputs[0]!, amountSats: 49_900n }, p.tx.outputs[1]!],
      signatures: [null]
    }
    signOwnInput(withFee, 0, ms[0]!.secretKey)
    assert.match(
      refusal(
        serializeSigned(withFee),
        withFee.inputs.map((i) => i.prevout),
        { expectedFeeSats: 0n }
      ),
      /fee is 100 sats, expected 0/
    )
    assert.match(
      refusal(
        serializeSigned(withFee),
        withFee.inputs.map((i) => i.prevout)
      ),
      /a dust anchor is only relayed in a zero-fee transaction/
    )
    const dust: GraphTx = {
      ...p.tx,
      outputs: [
        { ...p.tx.outputs[0]!, amountSats: 49_800n },
        { ...p.tx.outputs[0]!, amountSats: 200n },
        p.tx.outputs[1]!
      ],
      signatures: [null]
    }
    signOwnInput(dust, 0, ms[0]!.secretKey)
    assert.match(
      refusal(
        serializeSigned(dust),
        dust.inputs.map((i) => i.prevout)
      ),
      /output 1: 200 sats is below the P2TR dust limit 330/
    )
    const over: GraphTx = {
      ...p.tx,
      outputs: [{ ...p.tx.outputs[0]!, amountSats: 50_001n }, p.tx.outputs[1]!],
      signatures: [null]
    }
    signOwnInput(over, 0, ms[0]!.secretKey)
    assert.match(
      refusal(
        serializeSigned(over),
        over.inputs.map((i) => i.prevout)
      ),
      /outputs pay 50001 sats, inputs hold 50000/
    )
    const timed: GraphTx = { ...p.tx, inputs: [{ ...p.tx.inputs[0]!, sequence: 0x0040_0001 }], signatures: [null] }
    signOwnInput(timed, 0, ms[0]!.secretKey)
    assert.match(
      refusal(
        serializeSigned(timed),
        timed.inputs.map((i) => i.prevout)
      ),
      /input 0: nSequence 0x400001 is a time-based relative lock/
    )
  })

  it('a fee child spends the anchor (empty witness) and a wallet coin; the package pays the fee at a feerate that relays', () => {
    const coin: Prevout = {
      txid: new Uint8Array(32).fill(9),
      vout: 0,
      amountSats: 20_000n,
      scriptPubKey: Uint8Array.of(0x51, 0x20, ...ownersOutputKey([ms[0]!.publicKey]))
    }
    const child = anchorChild(layer, coin, ms[0]!.publicKey, 1_000n)
    signOwnInput(child, 1, ms[0]!.secretKey)
    const v = checkTransaction(
      serializeSigned(child),
      child.inputs.map((i) => i.prevout),
      { expectedFeeSats: 1_000n, trucChild: true }
    )
    assert.ok(v.ok, v.ok ? '' : v.reason)
    const parent = parseTransaction(raw)
    const feerate = 1_000 / (parent.vsize + v.vsize)
    assert.ok(feerate >= 1, `package feerate ${feerate} sat/vB`)
    // The anchor spend carries an empty witness; one there is refused.
    const signedAnchor: GraphTx = { ...child, signatures: [new Uint8Array(64).fill(1), child.signatures[1]!] }
    assert.match(
      refusal(
        serializeSigned(signedAnchor),
        child.inputs.map((i) => i.prevout)
      ),
      /input 0: a P2A anchor is spent with an empty witness/
    )
    assert.throws(
      () => anchorChild(layer, coin, ms[0]!.publicKey, 19_800n),
      /change of 200 sats would be below the P2TR dust limit 330/
    )
    assert.throws(() => anchorChild(layer, coin, ms[1]!.publicKey, 1_000n), /the coin is not .*'s member output/)
  })

  it('an export whose transaction does not follow from the funding or an earlier one', () => {
    assert.throws(
      () => exportBranch('regtest', s.pool.funding, [g.kickoff, g.layers[1]!]),
      (e: unknown) =>
        e instanceof ExportError &&
        /transaction 1 \(.*layer 2.*\) spends [0-9a-f]{64}:0, which is neither the funding nor an output of an earlier transaction/.test(
          e.message
        )
    )
    const unsigned = stateGraph({ ...s, stateNumber: 5 })
    assert.throws(
      () => exportBranch('regtest', s.pool.funding, [g.kickoff, unsigned.layers[0]!]),
      /transaction 1 .*: .*input 0 is not signed/
    )
  })
})

describe('equivocation on chain, the pool address, the state limit', function () {
  this.timeout(60_000)
  const ms = chainMembers(3, 'equivocation')
  const keys = ms.map((m) => m.publicKey)
  const s = rootState(ms, [50_000n, 60_000n, 70_000n])
  const g = stateGraph(s, { kickouts: false })

  it("two signed spends of one member output by its member are evidence anyone checks with Bitcoin's rules", () => {
    const a = partitionTx(s, g, [keys[0]!, keys[1]!], [50_000n, 60_000n], s.heightT).tx
    const b = partitionTx(s, g, [keys[0]!, keys[2]!], [50_000n, 70_000n], s.heightT).tx
    for (const t of [a, b]) t.inputs.forEach((inp, i) => signOwnInput(t, i, secretOf(ms, inp.owners[0]!)))
    const spent = a.inputs[0]!.prevout
    const ev = {
      member: keys[0]!,
      spent,
      first: { raw: serializeSigned(a), spends: a.inputs.map((i) => i.prevout) },
      second: { raw: serializeSigned(b), spends: b.inputs.map((i) => i.prevout) }
    }
    const v = verifyChainEquivocation(ev)
    assert.ok(v.ok, v.ok ? '' : v.reason)
    const same = verifyChainEquivocation({ ...ev, second: ev.first })
    assert.ok(!same.ok && same.reason === 'both are the same transaction')
    const other = verifyChainEquivocation({ ...ev, member: keys[1]! })
    assert.ok(!other.ok && /is not member .*'s own output/.test(other.reason))
    const forged = new Uint8Array(ev.second.raw)
    forged[forged.length - 20] ^= 1
    const bad = verifyChainEquivocation({ ...ev, second: { ...ev.second, raw: forged } })
    assert.ok(
      !bad.ok && /the second transaction: input \d: signature does not verify/.test(bad.reason),
      bad.ok ? '' : bad.reason
    )
  })

  it('the pool address is the bech32m address of the funding output key, per network', () => {
    const key = ownersOutputKey(keys)
    for (const [net, prefix] of [
      ['mainnet', 'bc1p'],
      ['signet', 'tb1p'],
      ['regtest', 'bcrt1p']
    ] as const) {
      const addr = poolAddress(net, keys)
      assert.ok(addr.startsWith(prefix), addr)
      assert.equal(toHex(decodeTaprootAddress(net, addr)), toHex(key))
    }
    assert.throws(
      () => decodeTaprootAddress('mainnet', poolAddress('regtest', keys)),
      /prefix bcrt is not mainnet's bc/
    )
    assert.equal(toHex(s.pool.funding.scriptPubKey.subarray(2)), toHex(key))
  })

  it('a root state of the pool model maps onto chain; a graph too large for TRUC is refused by name', () => {
    const model = {
      pool: {
        poolId: new Uint8Array(32),
        ref: { kind: 'root' as const },
        members: keys,
        funding: { txid: s.pool.funding.txid, vout: 1 },
        totalSats: 180_000n,
        kickoutDelayBlocks: 144
      },
      stateNumber: 0,
      heightT: 800_000,
      balances: [50_000n, 60_000n, 70_000n]
    }
    const c = rootChainState(model)
    assert.equal(toHex(c.pool.funding.scriptPubKey), toHex(s.pool.funding.scriptPubKey))
    assert.equal(toHex(stateGraph(c).state.txid), toHex(stateGraph(s).state.txid))
    const big = rootState(
      chainMembers(240, 'big'),
      Array.from({ length: 240 }, () => 1_000n)
    )
    assert.throws(
      () => stateGraph(big, { kickouts: false }),
      /state of state 0 .*: \d+ vB once signed, over TRUC's 10000 vB/
    )
  })

  it('a state beyond statesPerLayer^layers is refused, naming the limit', () => {
    assert.throws(
      () => stateGraph({ ...s, stateNumber: 512 }),
      /state 512: a pool has 512 states \(8 per layer, 3 layers\); refresh the pool or partition/
    )
    assert.throws(
      () => stateGraph({ ...s, pool: { ...s.pool, params: { layers: 1, statesPerLayer: 70_000, stepBlocks: 1 } } }),
      /exceeds the largest relative timelock 65535/
    )
    assert.throws(
      () => stateGraph({ ...s, balances: [1n, 2n, 3n] }),
      /balances: sum 6 differs from the funding's 180000 sats/
    )
  })

  it('a graph transaction parses back to what was built (txid, sizes within TRUC)', () => {
    signRound(ms, graphTransactions(g))
    checkGraph(graphTransactions(g))
    for (const t of graphTransactions(g)) {
      const p = parseTransaction(serializeSigned(t))
      assert.equal(toHex(p.txid), toHex(t.txid))
      assert.equal(p.version, 3)
      assert.ok(p.vsize < 10_000)
    }
  })
})

describe('Decker-Wattenhofer ordering: a newer state always wins', () => {
  it("for every pair of states N' < N (3 layers × 8): they share the kickoff and every layer above the first digit that differs, where both spend the same output and N waits at least one step less", () => {
    const ms = chainMembers(2, 'dw')
    const s = rootState(ms, [40_000n, 60_000n])
    const p = DEFAULT_GRAPH_PARAMS
    const graphs = Array.from({ length: 512 }, (_, n) => stateGraph({ ...s, stateNumber: n }, { kickouts: false }))
    for (let older = 0; older < 512; older += 7) {
      for (let newer = older + 1; newer < 512; newer += 13) {
        const a = graphs[older]!
        const b = graphs[newer]!
        const k = b.layers.findIndex((t, i) => toHex(t.txid) !== toHex(a.layers[i]!.txid))
        assert.ok(k >= 0, `states ${older} and ${newer} differ in some layer`)
        assert.equal(
          toHex(b.layers[k]!.inputs[0]!.prevout.txid),
          toHex(a.layers[k]!.inputs[0]!.prevout.txid),
          `same parent at layer ${k + 1}`
        )
        assert.ok(
          b.layers[k]!.waitBlocks + p.stepBlocks <= a.layers[k]!.waitBlocks,
          `states ${older} → ${newer}, layer ${k + 1}`
        )
        assert.notEqual(toHex(b.state.txid), toHex(a.state.txid))
      }
    }
  })
})
