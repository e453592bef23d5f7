/**
 * nextStep: what a member broadcasts, and when, along its branch (docs/protocol.md 9.4): a
 * transaction only once its parent confirmed and its nSequence/nLockTime allow it; an output spent
 * by another transaction (an older state that won, an equivocation) is reported.
 */
import assert from 'node:assert/strict'
import { reverseBytes, toHex } from '../../../protocol/index.js'
import {
  describeOutpoint,
  layerWaitBlocks,
  nextStep,
  stateGraph,
  DEFAULT_GRAPH_PARAMS,
  type ChainView,
  type GraphTx,
  type Prevout
} from '../../../protocol/bitcoin/index.js'
import { chainMembers, rootState } from './helpers.js'

/** What the chain shows, as data (nextStep is a pure function of it). */
class RecordedChain implements ChainView {
  tipHeight = 100
  readonly heights = new Map<string, number>()
  readonly spends = new Map<string, string>()
  confirm(tx: GraphTx | { txid: Uint8Array; inputs: readonly { prevout: Prevout }[] }, height = this.tipHeight): void {
    const id = toHex(reverseBytes(tx.txid))
    this.heights.set(id, height)
    for (const i of tx.inputs) this.spends.set(describeOutpoint(i.prevout.txid, i.prevout.vout), id)
  }
  confirmationHeight(txidHex: string): number | null {
    return this.heights.get(txidHex) ?? null
  }
  spentBy(o: Prevout): string | null {
    return this.spends.get(describeOutpoint(o.txid, o.vout)) ?? null
  }
}

describe('watching a branch on chain (protocol/bitcoin/watch.ts)', () => {
  const ms = chainMembers(2, 'watch')
  const s0 = rootState(ms, [40_000n, 60_000n], { heightT: 100, kickoutDelayBlocks: 500 })
  const s1 = { ...s0, stateNumber: 1 }
  const g0 = stateGraph(s0)
  const g1 = stateGraph(s1)
  const branch = [g1.kickoff, ...g1.layers, g1.state]

  function chainWithFunding(): RecordedChain {
    const c = new RecordedChain()
    c.heights.set(toHex(reverseBytes(s0.pool.funding.txid)), 90)
    return c
  }

  it('waits for the funding, broadcasts the kickoff, then each layer once its relative timelock allows, until done', () => {
    const empty = new RecordedChain()
    assert.equal(nextStep(branch, empty).kind, 'unconfirmed-parent')
    const c = chainWithFunding()
    let step = nextStep(branch, c)
    assert.ok(step.kind === 'broadcast' && step.index === 0)
    c.confirm(g1.kickoff, 101)
    c.tipHeight = 101
    step = nextStep(branch, c)
    assert.ok(
      step.kind === 'wait' &&
        step.index === 1 &&
        step.validFromHeight === 101 + layerWaitBlocks(DEFAULT_GRAPH_PARAMS, 0),
      JSON.stringify(step.kind)
    )
    c.tipHeight = step.validFromHeight - 1
    step = nextStep(branch, c)
    assert.ok(step.kind === 'broadcast' && step.index === 1)
    let h = c.tipHeight + 1
    for (let i = 1; i < branch.length; i++) {
      c.confirm(branch[i]!, h)
      c.tipHeight = h + 200
      h += 201
    }
    assert.equal(nextStep(branch, c).kind, 'done')
  })

  it("an older state's layer that confirmed first is reported as a conflict naming the output and its spender", () => {
    const c = chainWithFunding()
    c.confirm(g0.kickoff, 101)
    c.confirm(g0.layers[0]!, 190)
    c.confirm(g0.layers[1]!, 280)
    c.confirm(g0.layers[2]!, 370) // state 0's last layer (digit 0) instead of state 1's (digit 1)
    c.tipHeight = 400
    const step = nextStep(branch, c)
    assert.ok(step.kind === 'conflict' && step.index === 3, step.kind)
    assert.equal(step.spentBy, toHex(reverseBytes(g0.layers[2]!.txid)))
    assert.equal(step.outpoint, describeOutpoint(g0.layers[1]!.txid, 0))
  })

  it('a kick-out waits for T + X as well', () => {
    const k = g1.kickouts[0]!.kickout
    const kb = [g1.kickoff, ...g1.layers, k]
    const c = chainWithFunding()
    c.confirm(g1.kickoff, 101)
    g1.layers.forEach((l, i) => c.confirm(l, 102 + i))
    c.tipHeight = 110
    const step = nextStep(kb, c)
    assert.ok(step.kind === 'wait' && step.validFromHeight === s1.heightT + 500 + 1)
  })
})
