/**
 * A member's exit branch, ready for `bitcoin-cli`, and the pool's address; equivocation evidence
 * as two signed spends of one output.
 */
import { equalBytes, reverseBytes, toHex } from '../bytes.js'
import { short } from '../common.js'
import { describeOutpoint, checkTransaction, type CheckedTx } from './checker.js'
import { ownersOutputKey } from './musig.js'
import { serializeSigned, type GraphTx, type Prevout } from './graph.js'
import { p2trOutputKey, taprootAddress, type Network } from './script.js'

export interface ExportedOutput {
  /** As Bitcoin displays it. */
  txid: string
  vout: number
  /** A JSON number: every amount is at most 21 million BTC, below 2^53. */
  amountSats: number
  scriptPubKey: string
}

export interface ExportedTx {
  txid: string
  /** What it is ("layer 2 (digit 1) of state 1 (pool …)"). */
  label: string
  hex: string
  spends: ExportedOutput[]
  /** Blocks to wait after its parent confirms before it is valid. */
  waitBlocks: number
  /** First block height that may include it (kick-outs), when it has an nLockTime. */
  notBeforeHeight?: number
}

export interface ExportedBranch {
  network: Network
  funding: ExportedOutput
  transactions: ExportedTx[]
}

function exportOutput(p: Prevout): ExportedOutput {
  return {
    txid: toHex(reverseBytes(p.txid)),
    vout: p.vout,
    amountSats: Number(p.amountSats),
    scriptPubKey: toHex(p.scriptPubKey)
  }
}

export class ExportError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ExportError'
  }
}

/**
 * The branch `txs` (broadcast order, from the one spending `funding`) as JSON. Every transaction is
 * checked first (fully signed, every witness valid, zero fee, relay policy) and must spend either
 * the funding or an output of an earlier transaction of the branch; throws `ExportError` naming the
 * first that is not.
 */
export function exportBranch(network: Network, funding: Prevout, txs: readonly GraphTx[]): ExportedBranch {
  const known = new Map<string, Prevout>([[describeOutpoint(funding.txid, funding.vout), funding]])
  const transactions = txs.map((t, n) => {
    let raw: Uint8Array
    try {
      raw = serializeSigned(t)
    } catch (e) {
      throw new ExportError(`transaction ${n} (${t.label}): ${(e as Error).message}`)
    }
    for (const inp of t.inputs) {
      const k = describeOutpoint(inp.prevout.txid, inp.prevout.vout)
      const prev = known.get(k)
      if (
        prev === undefined ||
        prev.amountSats !== inp.prevout.amountSats ||
        !equalBytes(prev.scriptPubKey, inp.prevout.scriptPubKey)
      ) {
        throw new ExportError(
          `transaction ${n} (${t.label}) spends ${k}, which is neither the funding nor an output of an earlier transaction of the branch`
        )
      }
    }
    const v = checkTransaction(
      raw,
      t.inputs.map((i) => i.prevout),
      { expectedFeeSats: 0n }
    )
    if (!v.ok) throw new ExportError(`transaction ${n} (${t.label}): ${v.reason}`)
    t.outputs.forEach((o, vout) =>
      known.set(describeOutpoint(t.txid, vout), {
        txid: t.txid,
        vout,
        amountSats: o.amountSats,
        scriptPubKey: o.scriptPubKey
      })
    )
    const out: ExportedTx = {
      txid: toHex(reverseBytes(v.txid)),
      label: t.label,
      hex: toHex(raw),
      spends: t.inputs.map((i) => exportOutput(i.prevout)),
      waitBlocks: v.waitBlocks
    }
    if (v.notBeforeHeight > 0) out.notBeforeHeight = v.notBeforeHeight
    return out
  })
  return { network, funding: exportOutput(funding), transactions }
}

/** The bech32m address to fund a root pool of `members` (sorted) with. */
export function poolAddress(network: Network, members: readonly Uint8Array[]): string {
  return taprootAddress(network, ownersOutputKey(members))
}

// ---- equivocation ----

/** Two different transactions spending the same output, each with a valid signature of its owner. */
export interface ChainEquivocation {
  /** The member who owns the output alone (its x-only member key). */
  member: Uint8Array
  spent: Prevout
  first: { raw: Uint8Array; spends: Prevout[] }
  second: { raw: Uint8Array; spends: Prevout[] }
}

export type EquivocationVerdict =
  | { ok: true; firstTxid: Uint8Array; secondTxid: Uint8Array }
  | { ok: false; reason: string }

/**
 * Check chain equivocation evidence with Bitcoin's rules alone: `spent` is `member`'s member
 * output (its BIP86 key), both transactions are valid spends of it (every witness verified), and
 * they are different transactions. Never throws.
 */
export function verifyChainEquivocation(ev: ChainEquivocation): EquivocationVerdict {
  const key = p2trOutputKey(ev.spent.scriptPubKey)
  if (key === null) return { ok: false, reason: 'the spent output is not P2TR' }
  let expected: Uint8Array
  try {
    expected = ownersOutputKey([ev.member])
  } catch (e) {
    return { ok: false, reason: `member key: ${(e as Error).message}` }
  }
  if (!equalBytes(key, expected))
    return { ok: false, reason: `the spent output is not member ${short(ev.member)}'s own output` }
  const verdicts: CheckedTx[] = []
  for (const [name, t] of [
    ['first', ev.first],
    ['second', ev.second]
  ] as const) {
    const at = t.spends.findIndex((p) => equalBytes(p.txid, ev.spent.txid) && p.vout === ev.spent.vout)
    if (at < 0)
      return {
        ok: false,
        reason: `the ${name} transaction does not spend ${describeOutpoint(ev.spent.txid, ev.spent.vout)}`
      }
    const p = t.spends[at]!
    if (p.amountSats !== ev.spent.amountSats || !equalBytes(p.scriptPubKey, ev.spent.scriptPubKey))
      return { ok: false, reason: `the ${name} transaction is given another amount or script for the spent output` }
    const v = checkTransaction(t.raw, t.spends, { policy: false })
    if (!v.ok) return { ok: false, reason: `the ${name} transaction: ${v.reason}` }
    verdicts.push(v)
  }
  if (equalBytes(verdicts[0]!.txid, verdicts[1]!.txid)) return { ok: false, reason: 'both are the same transaction' }
  return { ok: true, firstTxid: verdicts[0]!.txid, secondTxid: verdicts[1]!.txid }
}
