/**
 * The transaction graph of a (sub-)pool state on chain (docs/protocol.md section 9).
 *
 *     funding ─ kickoff ─ layer 1 (d1) ─ … ─ layer L (dL) ─┬─ state(N)        pays every member
 *                                                           └─ kickout(N,u)    pays u, re-pools the rest
 *                                                                └─ continuation: kickoff' ─ layers' ─ state'(0)
 *     state(N):a, state(N):b … ─ partition(A) ─ the sub-pool's own graph
 *
 * Every transaction is version 3, pays zero fee and ends with a P2A anchor. Transactions are built
 * with `@scure/btc-signer`; its BIP341 signature hashes are what members sign. Nothing here
 * checks a witness: that is the checker's job (checker.ts), an independent implementation.
 */
import { schnorr } from '@noble/curves/secp256k1.js'
import { Transaction } from '@scure/btc-signer'
import { compareBytes, equalBytes, fromHex, reverseBytes, toHex } from '../bytes.js'
import { short, sumSats } from '../common.js'
import { publicKeyOf, ZERO_AUX } from '../keys.js'
import { LOCKTIME_THRESHOLD, MAX_KICKOUT_DELAY_BLOCKS, MAX_MEMBERS, MIN_KICKOUT_DELAY_BLOCKS } from '../limits.js'
import type { PoolState } from '../state.js'
import { checkTransaction, type Prevout } from './checker.js'
import { ownersOutputKey, type SigningJob } from './musig.js'
import {
  GRAPH_TX_VERSION,
  MAX_RELATIVE_LOCK_BLOCKS,
  P2A_SCRIPT,
  P2TR_DUST_SATS,
  SEQUENCE_NO_RELATIVE_LOCK,
  TRUC_CHILD_MAX_VSIZE,
  TRUC_MAX_VSIZE,
  p2trScript,
  tweakedSecretKey
} from './script.js'

/** Decker-Wattenhofer parameters: `layers` × `statesPerLayer`, one step of `stepBlocks`. */
export interface GraphParams {
  layers: number
  statesPerLayer: number
  stepBlocks: number
}

export const DEFAULT_GRAPH_PARAMS: GraphParams = Object.freeze({ layers: 3, statesPerLayer: 8, stepBlocks: 12 })
export const MAX_LAYERS = 8

export type { Prevout } from './checker.js'

/** A (sub-)pool on chain: its members (sorted), the output it spends, the kick-out delay X. */
export interface ChainPool {
  members: readonly Uint8Array[]
  funding: Prevout
  kickoutDelayBlocks: number
  params: GraphParams
}

/** State N of a chain pool (balances aligned with members, summing to the funding's value). */
export interface ChainState {
  pool: ChainPool
  stateNumber: number
  heightT: number
  balances: readonly bigint[]
}

export type GraphTxKind = 'kickoff' | 'layer' | 'state' | 'kickout' | 'partition' | 'fee-child'

export interface GraphInput {
  prevout: Prevout
  sequence: number
  /** Owners of the spent output (sorted): one signs alone, two or more sign with MuSig2, none for a P2A anchor (empty witness). */
  owners: readonly Uint8Array[]
}

export interface GraphOutput {
  amountSats: bigint
  scriptPubKey: Uint8Array
  /** Owners (sorted), or null for the anchor. */
  owners: readonly Uint8Array[] | null
}

/** One transaction of the graph, with the witnesses collected so far. */
export interface GraphTx {
  kind: GraphTxKind
  label: string
  version: number
  lockTime: number
  inputs: readonly GraphInput[]
  outputs: readonly GraphOutput[]
  /** Internal byte order. */
  txid: Uint8Array
  /** Blocks to wait after the parent confirms (the largest relative timelock of its inputs). */
  waitBlocks: number
  /** First block height that may include it (nLockTime + 1), or 0. */
  notBeforeHeight: number
  /** One 64-byte BIP340 signature per input, once known (empty for an anchor spend). */
  signatures: (Uint8Array | null)[]
}

/** The graph of one state: the kickoff, the layers, the state and (optionally) the kick-outs. */
export interface StateGraph {
  kickoff: GraphTx
  layers: GraphTx[]
  state: GraphTx
  /** kickouts[i]: the kick-out of member i and its continuation; empty when not built. */
  kickouts: KickoutBranch[]
}

export interface KickoutBranch {
  evictedIndex: number
  kickout: GraphTx
  /** State 0 of the members without the evicted one, or null when fewer than two remain or nothing is left. */
  continuation: { state: ChainState; graph: StateGraph } | null
}

export class GraphError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'GraphError'
  }
}

// ---- parameters and digits ----

/** Throws `GraphError` unless the parameters are usable: relative locks fit nSequence, 2..8 layers. */
export function checkGraphParams(p: GraphParams): void {
  if (!Number.isInteger(p.layers) || p.layers < 1 || p.layers > MAX_LAYERS)
    throw new GraphError(`layers: expected 1..${MAX_LAYERS}, got ${p.layers}`)
  if (!Number.isInteger(p.statesPerLayer) || p.statesPerLayer < 2)
    throw new GraphError(`statesPerLayer: expected 2 or more, got ${p.statesPerLayer}`)
  if (!Number.isInteger(p.stepBlocks) || p.stepBlocks < 1)
    throw new GraphError(`stepBlocks: expected 1 or more, got ${p.stepBlocks}`)
  if ((p.statesPerLayer - 1) * p.stepBlocks > MAX_RELATIVE_LOCK_BLOCKS) {
    throw new GraphError(
      `(statesPerLayer - 1) × stepBlocks = ${(p.statesPerLayer - 1) * p.stepBlocks} exceeds the largest relative timelock ${MAX_RELATIVE_LOCK_BLOCKS}`
    )
  }
  if (statesPerPool(p) > 2 ** 32) throw new GraphError(`statesPerLayer^layers exceeds 2^32 states`)
}

/** `statesPerLayer ^ layers`: how many states one (sub-)pool can have. */
export function statesPerPool(p: GraphParams): number {
  return p.statesPerLayer ** p.layers
}

/** The longest wait after the kickoff confirms, in blocks: `layers · (statesPerLayer - 1) · stepBlocks`. */
export function longestExitWaitBlocks(p: GraphParams): number {
  return p.layers * (p.statesPerLayer - 1) * p.stepBlocks
}

/** The layer digits of state N, most significant first. */
export function stateDigits(p: GraphParams, stateNumber: number): number[] {
  if (!Number.isInteger(stateNumber) || stateNumber < 0 || stateNumber >= statesPerPool(p)) {
    throw new GraphError(
      `state ${stateNumber}: a pool has ${statesPerPool(p)} states (${p.statesPerLayer} per layer, ${p.layers} layers); refresh the pool or partition`
    )
  }
  const digits = new Array<number>(p.layers).fill(0)
  let n = stateNumber
  for (let k = p.layers - 1; k >= 0; k--) {
    digits[k] = n % p.statesPerLayer
    n = Math.floor(n / p.statesPerLayer)
  }
  return digits
}

/** Relative timelock of the layer with digit `d`: newer states wait less. */
export function layerWaitBlocks(p: GraphParams, digit: number): number {
  return (p.statesPerLayer - 1 - digit) * p.stepBlocks
}

/** Index of the first layer that state N signs anew (the first digit that differs from N-1's). */
export function firstChangedLayer(p: GraphParams, stateNumber: number): number {
  if (stateNumber === 0) return 0
  const a = stateDigits(p, stateNumber - 1)
  const b = stateDigits(p, stateNumber)
  return a.findIndex((d, k) => d !== b[k])
}

// ---- building ----

function checkState(s: ChainState): void {
  const pool = s.pool
  checkGraphParams(pool.params)
  const n = pool.members.length
  if (n < 1 || n > MAX_MEMBERS) throw new GraphError(`members: expected 1..${MAX_MEMBERS}, got ${n}`)
  for (let i = 1; i < n; i++)
    if (compareBytes(pool.members[i - 1]!, pool.members[i]!) >= 0)
      throw new GraphError(`members[${i}]: members must be sorted and unique`)
  if (s.balances.length !== n)
    throw new GraphError(`balances: expected ${n} (one per member), got ${s.balances.length}`)
  s.balances.forEach((b, i) => {
    if (typeof b !== 'bigint' || b < 0n)
      throw new GraphError(`balances[${i}]: negative or not an integer: ${String(b)}`)
  })
  if (sumSats([...s.balances]) !== pool.funding.amountSats)
    throw new GraphError(
      `balances: sum ${sumSats([...s.balances])} differs from the funding's ${pool.funding.amountSats} sats`
    )
  const x = pool.kickoutDelayBlocks
  if (!Number.isInteger(x) || x < MIN_KICKOUT_DELAY_BLOCKS || x > MAX_KICKOUT_DELAY_BLOCKS)
    throw new GraphError(
      `kickoutDelayBlocks: ${x} is not within ${MIN_KICKOUT_DELAY_BLOCKS}..${MAX_KICKOUT_DELAY_BLOCKS}`
    )
  if (!Number.isInteger(s.heightT) || s.heightT < 0 || s.heightT + x >= LOCKTIME_THRESHOLD)
    throw new GraphError(`heightT: ${s.heightT} + X must be a height below ${LOCKTIME_THRESHOLD}`)
  stateDigits(pool.params, s.stateNumber)
}

/** The scriptPubKey of an output owned by `owners` (sorted). */
export function ownersScript(owners: readonly Uint8Array[]): Uint8Array {
  return p2trScript(ownersOutputKey(owners))
}

function scureTx(
  version: number,
  lockTime: number,
  inputs: readonly GraphInput[],
  outputs: readonly GraphOutput[]
): Transaction {
  const tx = new Transaction({ version, lockTime, allowUnknownOutputs: true })
  for (const i of inputs) {
    tx.addInput({
      txid: reverseBytes(i.prevout.txid),
      index: i.prevout.vout,
      sequence: i.sequence,
      witnessUtxo: { script: i.prevout.scriptPubKey, amount: i.prevout.amountSats }
    })
  }
  for (const o of outputs) tx.addOutput({ script: o.scriptPubKey, amount: o.amountSats })
  return tx
}

function relativeLockOf(sequence: number): number {
  // Graph inputs only use block-based relative locks (type flag clear) or none (disable flag set).
  return sequence & 0x8000_0000 ? 0 : sequence & 0xffff
}

/** vsize once every input carries its one 64-byte signature: marker and flag, then per input 1 + 1 + 64 weight units. */
function signedVsize(tx: Transaction, inputs: number): number {
  return Math.ceil((tx.toBytes(true, false).length * 4 + 2 + 66 * inputs) / 4)
}

function makeTx(
  kind: GraphTxKind,
  label: string,
  lockTime: number,
  inputs: GraphInput[],
  outputs: GraphOutput[]
): GraphTx {
  const tx = scureTx(GRAPH_TX_VERSION, lockTime, inputs, outputs)
  const vsize = signedVsize(tx, inputs.length)
  if (vsize > TRUC_MAX_VSIZE)
    throw new GraphError(
      `${label}: ${vsize} vB once signed, over TRUC's ${TRUC_MAX_VSIZE} vB (too many members or actives for one transaction)`
    )
  return {
    kind,
    label,
    version: GRAPH_TX_VERSION,
    lockTime,
    inputs,
    outputs,
    txid: reverseBytes(fromHex(tx.id)),
    waitBlocks: Math.max(...inputs.map((i) => relativeLockOf(i.sequence))),
    notBeforeHeight: lockTime > 0 ? lockTime + 1 : 0,
    signatures: inputs.map((i) => (i.owners.length === 0 ? new Uint8Array(0) : null))
  }
}

function anchor(amountSats: bigint): GraphOutput {
  return { amountSats, scriptPubKey: P2A_SCRIPT, owners: null }
}

function sharedOutput(owners: readonly Uint8Array[], amountSats: bigint): GraphOutput {
  return { amountSats, scriptPubKey: ownersScript(owners), owners }
}

function outpointOf(tx: GraphTx, vout: number): Prevout {
  const o = tx.outputs[vout]!
  return { txid: tx.txid, vout, amountSats: o.amountSats, scriptPubKey: o.scriptPubKey }
}

/** Balances paid to their owners, the ones below the P2TR dust limit going to the anchor instead. */
function payouts(owners: readonly Uint8Array[][], amounts: readonly bigint[]): GraphOutput[] {
  const out: GraphOutput[] = []
  let dust = 0n
  owners.forEach((o, i) => {
    const v = amounts[i]!
    if (v >= P2TR_DUST_SATS) out.push(sharedOutput(o, v))
    else dust += v
  })
  out.push(anchor(dust))
  return out
}

function describe(s: ChainState, what: string): string {
  return `${what} of state ${s.stateNumber} (pool ${short(reverseBytes(s.pool.funding.txid))}:${s.pool.funding.vout})`
}

/** The kickoff of a pool: the same for all its states, signed once. */
export function kickoffTx(pool: ChainPool): GraphTx {
  const input: GraphInput = { prevout: pool.funding, sequence: SEQUENCE_NO_RELATIVE_LOCK, owners: pool.members }
  return makeTx(
    'kickoff',
    `kickoff (pool ${short(reverseBytes(pool.funding.txid))}:${pool.funding.vout})`,
    0,
    [input],
    [sharedOutput(pool.members, pool.funding.amountSats), anchor(0n)]
  )
}

/**
 * The graph of state `s`: kickoff, layers, state, and with `kickouts` (default true) every
 * member's kick-out with its continuation's state 0. Throws `GraphError` naming what is wrong.
 * A one-member pool has no graph: its funding output is its member's.
 */
export function stateGraph(s: ChainState, opts: { kickouts?: boolean } = {}): StateGraph {
  checkState(s)
  const pool = s.pool
  if (pool.members.length < 2)
    throw new GraphError("a one-member pool has no graph: its funding output is its member's own")
  const p = pool.params
  const kickoff = kickoffTx(pool)
  const digits = stateDigits(p, s.stateNumber)
  const layers: GraphTx[] = []
  let parent = kickoff
  digits.forEach((d, k) => {
    const input: GraphInput = { prevout: outpointOf(parent, 0), sequence: layerWaitBlocks(p, d), owners: pool.members }
    parent = makeTx(
      'layer',
      describe(s, `layer ${k + 1} (digit ${d})`),
      0,
      [input],
      [sharedOutput(pool.members, pool.funding.amountSats), anchor(0n)]
    )
    layers.push(parent)
  })
  const last: GraphInput = { prevout: outpointOf(parent, 0), sequence: SEQUENCE_NO_RELATIVE_LOCK, owners: pool.members }
  const state = makeTx(
    'state',
    describe(s, 'state'),
    0,
    [last],
    payouts(
      pool.members.map((m) => [m]),
      s.balances
    )
  )
  const kickouts: KickoutBranch[] = []
  if (opts.kickouts ?? true) {
    for (let i = 0; i < pool.members.length; i++) kickouts.push(kickoutBranch(s, last, i))
  }
  return { kickoff, layers, state, kickouts }
}

function kickoutBranch(s: ChainState, last: GraphInput, i: number): KickoutBranch {
  const pool = s.pool
  const rest = pool.members.filter((_, j) => j !== i)
  const restSats = pool.funding.amountSats - s.balances[i]!
  const outputs = payouts([[pool.members[i]!], rest], [s.balances[i]!, restSats])
  const lock = s.heightT + pool.kickoutDelayBlocks
  const kickout = makeTx(
    'kickout',
    describe(s, `kick-out of member ${i} (${short(pool.members[i]!)})`),
    lock,
    [last],
    outputs
  )
  const restVout = outputs.findIndex(
    (o) => o.owners !== null && o.owners.length === rest.length && o.owners.every((k, j) => equalBytes(k, rest[j]!))
  )
  if (rest.length < 2 || restVout < 0) return { evictedIndex: i, kickout, continuation: null }
  const cpool: ChainPool = {
    members: rest,
    funding: outpointOf(kickout, restVout),
    kickoutDelayBlocks: pool.kickoutDelayBlocks,
    params: pool.params
  }
  const state: ChainState = {
    pool: cpool,
    stateNumber: 0,
    heightT: s.heightT,
    balances: s.balances.filter((_, j) => j !== i)
  }
  return { evictedIndex: i, kickout, continuation: { state, graph: stateGraph(state, { kickouts: false }) } }
}

/** The output of `state(N)` paying `member`, or -1 if it has none (balance below dust). */
export function memberVout(graph: StateGraph, member: Uint8Array): number {
  return graph.state.outputs.findIndex(
    (o) => o.owners !== null && o.owners.length === 1 && equalBytes(o.owners[0]!, member)
  )
}

/** The partition transaction of `actives` (any order) from `state(N)`, and the sub-pool it funds. */
export interface PartitionBuild {
  tx: GraphTx
  pool: ChainPool
  /** Sub-state 0: `newBalances` by sorted active. */
  state: ChainState
}

/**
 * The partition among `actives` (aligned with `newBalances`) of state `parent` whose graph is
 * `graph`, with sub-state 0 at height `heightT`. Throws `GraphError`: no actives, duplicates, a
 * non-member, an active without an output in `state(N)`, or a sum that differs from theirs.
 */
export function partitionTx(
  parent: ChainState,
  graph: StateGraph,
  actives: readonly Uint8Array[],
  newBalances: readonly bigint[],
  heightT: number
): PartitionBuild {
  if (actives.length === 0) throw new GraphError('a partition needs at least one active')
  if (newBalances.length !== actives.length)
    throw new GraphError(`newBalances: expected ${actives.length} (one per active), got ${newBalances.length}`)
  const pairs = actives.map((key, i) => ({ key, balance: newBalances[i]! })).sort((a, b) => compareBytes(a.key, b.key))
  const inputs: GraphInput[] = []
  let sum = 0n
  pairs.forEach(({ key, balance }, i) => {
    if (i > 0 && equalBytes(pairs[i - 1]!.key, key)) throw new GraphError(`active ${short(key)} is listed twice`)
    if (typeof balance !== 'bigint' || balance < 0n)
      throw new GraphError(`new balance of active ${short(key)} is negative: ${String(balance)}`)
    const m = parent.pool.members.findIndex((k) => equalBytes(k, key))
    if (m < 0) throw new GraphError(`active ${short(key)} is not a member of this pool`)
    const vout = memberVout(graph, key)
    if (vout < 0)
      throw new GraphError(
        `active ${short(key)} has no output in state ${parent.stateNumber} (balance ${parent.balances[m]} below ${P2TR_DUST_SATS} sats)`
      )
    inputs.push({ prevout: outpointOf(graph.state, vout), sequence: SEQUENCE_NO_RELATIVE_LOCK, owners: [key] })
    sum += parent.balances[m]!
  })
  const newSum = sumSats(pairs.map((x) => x.balance))
  if (newSum !== sum) throw new GraphError(`sum of new balances ${newSum} differs from the actives' balances ${sum}`)
  const members = pairs.map((x) => x.key)
  const tx = makeTx(
    'partition',
    `partition of ${members.length} actives from ${describe(parent, 'state')}`,
    0,
    inputs,
    [sharedOutput(members, sum), anchor(0n)]
  )
  const pool: ChainPool = {
    members,
    funding: outpointOf(tx, 0),
    kickoutDelayBlocks: parent.pool.kickoutDelayBlocks,
    params: parent.pool.params
  }
  return { tx, pool, state: { pool, stateNumber: 0, heightT, balances: pairs.map((x) => x.balance) } }
}

// ---- signature hashes and witnesses ----

function toScure(t: GraphTx): Transaction {
  const tx = scureTx(t.version, t.lockTime, t.inputs, t.outputs)
  t.signatures.forEach((sig, i) => {
    // An anchor spend has no witness item: scure writes an empty witness for an input it has none for.
    if (sig !== null && sig.length > 0) tx.updateInput(i, { finalScriptWitness: [sig] })
  })
  return tx
}

/** BIP341 signature hash of input `i` (SIGHASH_DEFAULT, key path). */
export function sighash(t: GraphTx, i: number): Uint8Array {
  const tx = scureTx(t.version, t.lockTime, t.inputs, t.outputs)
  return tx.preimageWitnessV1(
    i,
    t.inputs.map((x) => x.prevout.scriptPubKey),
    0x00,
    t.inputs.map((x) => x.prevout.amountSats)
  )
}

/** Every MuSig2 job of `txs`: one per input owned by two or more members. */
export function signingJobs(txs: readonly GraphTx[]): { job: SigningJob; tx: GraphTx; input: number }[] {
  const out: { job: SigningJob; tx: GraphTx; input: number }[] = []
  for (const tx of txs) {
    tx.inputs.forEach((inp, i) => {
      if (inp.owners.length >= 2)
        out.push({
          job: { label: `${tx.label} input ${i}`, message: sighash(tx, i), signers: inp.owners },
          tx,
          input: i
        })
    })
  }
  return out
}

/** Record the signature of input `i`. Throws `GraphError` unless it is 64 bytes (checked later by the checker). */
export function setSignature(t: GraphTx, i: number, signature: Uint8Array): void {
  if (i < 0 || i >= t.inputs.length) throw new GraphError(`${t.label}: no input ${i}`)
  if (signature.length !== 64)
    throw new GraphError(`${t.label} input ${i}: expected a 64-byte signature, got ${signature.length}`)
  t.signatures[i] = new Uint8Array(signature)
}

/** A member's own signature on input `i` (an output it owns alone, like its `state(N)` output). */
export function signOwnInput(t: GraphTx, i: number, secretKey: Uint8Array, auxRand: Uint8Array = ZERO_AUX): Uint8Array {
  const inp = t.inputs[i]
  if (inp === undefined) throw new GraphError(`${t.label}: no input ${i}`)
  const me = publicKeyOf(secretKey)
  if (inp.owners.length !== 1 || !equalBytes(inp.owners[0]!, me))
    throw new GraphError(`${t.label} input ${i}: not owned by ${short(me)} alone`)
  const sig = schnorr.sign(sighash(t, i), tweakedSecretKey(secretKey), auxRand)
  setSignature(t, i, sig)
  return sig
}

/** True once every input has a signature. */
export function isSigned(t: GraphTx): boolean {
  return t.signatures.every((s) => s !== null)
}

/** The transaction as Bitcoin serializes it, with its witnesses. Throws `GraphError` if one is missing. */
export function serializeSigned(t: GraphTx): Uint8Array {
  const missing = t.signatures.indexOf(null)
  if (missing >= 0) throw new GraphError(`${t.label}: input ${missing} is not signed`)
  return toScure(t).toBytes(true, true)
}

/** `serializeSigned` as hex. */
export function signedHex(t: GraphTx): string {
  return toHex(serializeSigned(t))
}

/** Every transaction of a state graph, parents before children. */
export function graphTransactions(g: StateGraph): GraphTx[] {
  const out = [g.kickoff, ...g.layers, g.state]
  for (const k of g.kickouts) {
    out.push(k.kickout)
    if (k.continuation !== null) out.push(...graphTransactions(k.continuation.graph))
  }
  return out
}

/**
 * What state N asks its members to sign: the kickoff (state 0 only), the layers from the first
 * whose digit changed, the state, and every kick-out with its continuation. The other layers are
 * those of state N-1, already signed (`adoptSignatures` carries them over).
 */
export function stateSigningTxs(s: ChainState, g: StateGraph): GraphTx[] {
  const from = firstChangedLayer(s.pool.params, s.stateNumber)
  const out = s.stateNumber === 0 ? [g.kickoff] : []
  out.push(...g.layers.slice(from), g.state)
  for (const k of g.kickouts) {
    out.push(k.kickout)
    if (k.continuation !== null) out.push(...graphTransactions(k.continuation.graph))
  }
  return out
}

/** Copy the signatures of `signed` onto the same transactions (same txid) among `txs`; returns how many. */
export function adoptSignatures(signed: readonly GraphTx[], txs: readonly GraphTx[]): number {
  const byId = new Map(signed.map((t) => [toHex(t.txid), t]))
  let n = 0
  for (const t of txs) {
    const src = byId.get(toHex(t.txid))
    if (src === undefined || src === t) continue
    src.signatures.forEach((sig, i) => {
      if (sig !== null && t.signatures[i] === null) {
        t.signatures[i] = sig
        n++
      }
    })
  }
  return n
}

/**
 * Check every transaction of `txs` with the checker (every witness, zero fee, relay policy). Throws
 * `GraphError` naming the first that fails: what a member runs on a graph before relying on it.
 */
export function checkGraph(txs: readonly GraphTx[]): void {
  for (const t of txs) {
    const v = checkTransaction(
      serializeSigned(t),
      t.inputs.map((i) => i.prevout),
      { expectedFeeSats: 0n }
    )
    if (!v.ok) throw new GraphError(`${t.label}: ${v.reason}`)
  }
}

/**
 * An active's signature on its input of a partition transaction, given only once the sub-pool's
 * state 0 graph is fully signed and checked (so the partition never exists without a way out).
 * Throws `GraphError` naming what is missing or wrong.
 */
export function signPartitionInput(
  p: PartitionBuild,
  subGraph: StateGraph | null,
  secretKey: Uint8Array,
  auxRand: Uint8Array = ZERO_AUX
): Uint8Array {
  const me = publicKeyOf(secretKey)
  const i = p.tx.inputs.findIndex((inp) => inp.owners.length === 1 && equalBytes(inp.owners[0]!, me))
  if (i < 0) throw new GraphError(`${short(me)} is not an active of this partition`)
  if (p.pool.members.length >= 2) {
    if (subGraph === null) throw new GraphError("the sub-pool's state 0 graph is needed before signing the partition")
    if (!equalBytes(subGraph.kickoff.inputs[0]!.prevout.txid, p.tx.txid))
      throw new GraphError("that graph is not the one of this partition's sub-pool")
    checkGraph(graphTransactions(subGraph))
  }
  return signOwnInput(p.tx, i, secretKey, auxRand)
}

/** The chain state of a root pool's state from the pool model (state.ts): its funding is the MuSig2 output of its members. */
export function rootChainState(s: PoolState, params: GraphParams = DEFAULT_GRAPH_PARAMS): ChainState {
  if (s.pool.ref.kind !== 'root')
    throw new GraphError(
      "only a root pool maps directly: a sub-pool's funding on chain comes from its partition or kick-out transaction"
    )
  const members = s.pool.members.map((m) => new Uint8Array(m))
  const pool: ChainPool = {
    members,
    funding: {
      txid: new Uint8Array(s.pool.funding.txid),
      vout: s.pool.funding.vout,
      amountSats: s.pool.totalSats,
      scriptPubKey: ownersScript(members)
    },
    kickoutDelayBlocks: s.pool.kickoutDelayBlocks,
    params
  }
  return { pool, stateNumber: s.stateNumber, heightT: s.heightT, balances: [...s.balances] }
}

/**
 * The child that pays for zero-fee graph transaction `parent` (TRUC package relay): it spends the
 * parent's anchor (empty witness) and `coin`, a member output of `owner` in the broadcaster's
 * wallet, and returns the rest minus `feeSats` to `owner`. Sign it with `signOwnInput` (input 1),
 * then `bitcoin-cli submitpackage '["<parent>", "<child>"]'`. Throws `GraphError` if the change
 * would be dust or the child exceeds TRUC's 1,000 vB for a child.
 */
export function anchorChild(parent: GraphTx, coin: Prevout, owner: Uint8Array, feeSats: bigint): GraphTx {
  const vout = parent.outputs.findIndex((o) => o.owners === null)
  if (vout < 0) throw new GraphError(`${parent.label}: no anchor`)
  if (!equalBytes(coin.scriptPubKey, ownersScript([owner])))
    throw new GraphError(`the coin is not ${short(owner)}'s member output`)
  const change = coin.amountSats + parent.outputs[vout]!.amountSats - feeSats
  if (feeSats < 0n) throw new GraphError(`feeSats: negative ${feeSats}`)
  if (change < P2TR_DUST_SATS)
    throw new GraphError(`change of ${change} sats would be below the P2TR dust limit ${P2TR_DUST_SATS}`)
  const inputs: GraphInput[] = [
    { prevout: outpointOf(parent, vout), sequence: SEQUENCE_NO_RELATIVE_LOCK, owners: [] },
    { prevout: coin, sequence: SEQUENCE_NO_RELATIVE_LOCK, owners: [owner] }
  ]
  const t = makeTx('fee-child', `fee child of ${parent.label}`, 0, inputs, [sharedOutput([owner], change)])
  const vsize = signedVsize(scureTx(t.version, 0, inputs, t.outputs), 1)
  if (vsize > TRUC_CHILD_MAX_VSIZE)
    throw new GraphError(`fee child: ${vsize} vB, over TRUC's ${TRUC_CHILD_MAX_VSIZE} vB for a child`)
  return t
}
