/**
 * What a member does next with its branch, given what the chain shows (docs/protocol.md 9.4).
 * Pure: the caller's chain source answers the questions (a simulated chain or bitcoind).
 */
import { reverseBytes, toHex } from '../bytes.js'
import { describeOutpoint } from './checker.js'
import type { GraphTx, Prevout } from './graph.js'

/** What the member knows of the chain. */
export interface ChainView {
  /** Height of the chain tip. */
  tipHeight: number
  /** Height of the block that confirmed `txid` (display order hex), or null if it is unconfirmed. */
  confirmationHeight(txidHex: string): number | null
  /** The txid (display order hex) of the confirmed transaction spending the outpoint, or null. */
  spentBy(outpoint: Prevout): string | null
}

export type WatchStep =
  | { kind: 'broadcast'; index: number; tx: GraphTx }
  | { kind: 'wait'; index: number; tx: GraphTx; validFromHeight: number }
  | { kind: 'unconfirmed-parent'; index: number; tx: GraphTx }
  | { kind: 'done' }
  | { kind: 'conflict'; index: number; tx: GraphTx; outpoint: string; spentBy: string }

function displayTxid(t: GraphTx): string {
  return toHex(reverseBytes(t.txid))
}

/**
 * The next step for `branch` (broadcast order): `done` when its last transaction confirmed;
 * `conflict` when an output it spends was spent by another transaction (an older state won a race,
 * or an equivocation: the member can only report it); `unconfirmed-parent` while the previous one
 * waits for a block; `wait` until its relative and absolute timelocks allow it; else `broadcast`
 * (as a package with a fee child, and again until it confirms).
 */
export function nextStep(branch: readonly GraphTx[], chain: ChainView): WatchStep {
  const heights = new Map<string, number>()
  for (let index = 0; index < branch.length; index++) {
    const tx = branch[index]!
    const id = displayTxid(tx)
    const confirmed = chain.confirmationHeight(id)
    if (confirmed !== null) {
      heights.set(id, confirmed)
      continue
    }
    let validFromHeight = tx.notBeforeHeight
    for (const inp of tx.inputs) {
      const spender = chain.spentBy(inp.prevout)
      if (spender !== null && spender !== id)
        return {
          kind: 'conflict',
          index,
          tx,
          outpoint: describeOutpoint(inp.prevout.txid, inp.prevout.vout),
          spentBy: spender
        }
      const parentId = toHex(reverseBytes(inp.prevout.txid))
      const h = heights.get(parentId) ?? chain.confirmationHeight(parentId)
      if (h === null) return { kind: 'unconfirmed-parent', index, tx }
      // BIP68: an input locked for n blocks may be in a block at height >= h + n.
      const relative = inp.sequence & 0x8000_0000 ? 0 : inp.sequence & 0xffff
      validFromHeight = Math.max(validFromHeight, h + relative)
    }
    if (chain.tipHeight + 1 < validFromHeight) return { kind: 'wait', index, tx, validFromHeight }
    return { kind: 'broadcast', index, tx }
  }
  return { kind: 'done' }
}
