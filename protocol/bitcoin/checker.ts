/**
 * The checker: given a serialized transaction and the outputs it spends, decide whether Bitcoin
 * would accept it, before a node signs on top of it or relies on it.
 *
 * It is written from BIP141/BIP341/BIP68/BIP431 and Bitcoin Core's relay policy, independently of
 * the library that builds the graph (graph.ts uses `@scure/btc-signer`), so each checks the other;
 * its signature hashes are tested against BIP341's published vectors. It checks: the encoding;
 * that each input spends the prevout it is given; every witness (key-path BIP340 signature over
 * the BIP341 signature hash, against the P2TR output key; P2A spent with an empty witness); the
 * amounts and the fee; nLockTime and BIP68 relative timelocks (reported, and checked against the
 * chain when heights are given); and the policy that matters for relay: version, TRUC size, dust
 * and ephemeral dust. Verdicts name what was wrong; nothing throws.
 */
import { schnorr } from '@noble/curves/secp256k1.js'
import { concatBytes, equalBytes, reverseBytes, toHex } from '../bytes.js'
import { sha256, sha256d, TAGS, taggedHash } from '../hash.js'
import { LOCKTIME_THRESHOLD, MAX_MONEY_SATS } from '../limits.js'
import {
  P2A_DUST_SATS,
  P2TR_DUST_SATS,
  SEQUENCE_DISABLE_FLAG,
  SEQUENCE_MASK,
  SEQUENCE_TYPE_FLAG,
  TRUC_CHILD_MAX_VSIZE,
  TRUC_MAX_VSIZE,
  isP2A,
  p2trOutputKey
} from './script.js'

/** An output being spent: where it is, its value and its script (what BIP341 signs). */
export interface Prevout {
  /** Internal byte order (as hashed). */
  txid: Uint8Array
  vout: number
  amountSats: bigint
  scriptPubKey: Uint8Array
}

/** Largest transaction the checker parses (a standard transaction is at most 400,000 weight). */
export const MAX_CHECKED_TX_BYTES = 400_000

export interface ParsedInput {
  /** Internal byte order. */
  txid: Uint8Array
  vout: number
  scriptSig: Uint8Array
  sequence: number
  witness: Uint8Array[]
}

export interface ParsedOutput {
  amountSats: bigint
  scriptPubKey: Uint8Array
}

export interface ParsedTx {
  version: number
  inputs: ParsedInput[]
  outputs: ParsedOutput[]
  lockTime: number
  /** Internal byte order. */
  txid: Uint8Array
  weight: number
  vsize: number
}

export class CheckError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CheckError'
  }
}

class Cursor {
  pos = 0
  constructor(readonly b: Uint8Array) {}
  need(n: number, what: string): void {
    if (this.pos + n > this.b.length)
      throw new CheckError(
        `${what}: truncated (needs ${n} bytes at offset ${this.pos}, ${this.b.length - this.pos} left)`
      )
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what)
    const out = this.b.slice(this.pos, this.pos + n)
    this.pos += n
    return out
  }
  u8(what: string): number {
    this.need(1, what)
    return this.b[this.pos++]!
  }
  u32(what: string): number {
    this.need(4, what)
    const v = new DataView(this.b.buffer, this.b.byteOffset + this.pos, 4).getUint32(0, true)
    this.pos += 4
    return v
  }
  u64(what: string): bigint {
    this.need(8, what)
    const v = new DataView(this.b.buffer, this.b.byteOffset + this.pos, 8).getBigUint64(0, true)
    this.pos += 8
    return v
  }
  varint(what: string): number {
    const f = this.u8(what)
    let v: number
    if (f < 0xfd) return f
    if (f === 0xfd) {
      this.need(2, what)
      v = this.b[this.pos]! | (this.b[this.pos + 1]! << 8)
      this.pos += 2
      if (v < 0xfd) throw new CheckError(`${what}: non-minimal varint`)
      return v
    }
    if (f === 0xfe) {
      v = this.u32(what)
      if (v <= 0xffff) throw new CheckError(`${what}: non-minimal varint`)
      return v
    }
    throw new CheckError(`${what}: varint too large`)
  }
  varbytes(what: string): Uint8Array {
    const n = this.varint(what)
    return this.bytes(n, what)
  }
}

function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n >>> 0, true)
  return b
}
function u64le(n: bigint): Uint8Array {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, n, true)
  return b
}
function varint(n: number): Uint8Array {
  if (n < 0xfd) return Uint8Array.of(n)
  if (n <= 0xffff) return Uint8Array.of(0xfd, n & 0xff, n >> 8)
  return concatBytes(Uint8Array.of(0xfe), u32le(n))
}
function varbytes(b: Uint8Array): Uint8Array {
  return concatBytes(varint(b.length), b)
}

/** Serialization without witnesses (what the txid hashes). */
function baseSerialization(tx: Omit<ParsedTx, 'txid' | 'weight' | 'vsize'>): Uint8Array {
  const parts: Uint8Array[] = [u32le(tx.version), varint(tx.inputs.length)]
  for (const i of tx.inputs) parts.push(i.txid, u32le(i.vout), varbytes(i.scriptSig), u32le(i.sequence))
  parts.push(varint(tx.outputs.length))
  for (const o of tx.outputs) parts.push(u64le(o.amountSats), varbytes(o.scriptPubKey))
  parts.push(u32le(tx.lockTime))
  return concatBytes(...parts)
}

/** Parse a transaction (BIP144 serialization, with or without witnesses). Throws `CheckError`. */
export function parseTransaction(bytes: Uint8Array): ParsedTx {
  if (bytes.length > MAX_CHECKED_TX_BYTES)
    throw new CheckError(`transaction: ${bytes.length} bytes exceeds ${MAX_CHECKED_TX_BYTES}`)
  const c = new Cursor(bytes)
  const version = c.u32('version')
  let segwit = false
  if (bytes[c.pos] === 0x00) {
    c.pos++
    const flag = c.u8('segwit flag')
    if (flag !== 0x01) throw new CheckError(`segwit flag: expected 1, got ${flag}`)
    segwit = true
  }
  const nIn = c.varint('inputs')
  if (nIn === 0) throw new CheckError('inputs: none')
  if (nIn * 41 > bytes.length) throw new CheckError(`inputs: count ${nIn} cannot fit`)
  const inputs: ParsedInput[] = []
  for (let i = 0; i < nIn; i++) {
    inputs.push({
      txid: c.bytes(32, `inputs[${i}].txid`),
      vout: c.u32(`inputs[${i}].vout`),
      scriptSig: c.varbytes(`inputs[${i}].scriptSig`),
      sequence: c.u32(`inputs[${i}].sequence`),
      witness: []
    })
  }
  const nOut = c.varint('outputs')
  if (nOut === 0) throw new CheckError('outputs: none')
  if (nOut * 9 > bytes.length) throw new CheckError(`outputs: count ${nOut} cannot fit`)
  const outputs: ParsedOutput[] = []
  for (let i = 0; i < nOut; i++) {
    const amountSats = c.u64(`outputs[${i}].amount`)
    if (amountSats > MAX_MONEY_SATS) throw new CheckError(`outputs[${i}].amount: ${amountSats} exceeds 21 million BTC`)
    outputs.push({ amountSats, scriptPubKey: c.varbytes(`outputs[${i}].scriptPubKey`) })
  }
  if (segwit) {
    let any = false
    for (let i = 0; i < nIn; i++) {
      const n = c.varint(`inputs[${i}].witness`)
      if (n > 1000) throw new CheckError(`inputs[${i}].witness: ${n} items`)
      for (let k = 0; k < n; k++) inputs[i]!.witness.push(c.varbytes(`inputs[${i}].witness[${k}]`))
      if (n > 0) any = true
    }
    if (!any) throw new CheckError('segwit marker with no witness (must be serialized without the marker)')
  }
  const lockTime = c.u32('lockTime')
  if (c.pos !== bytes.length) throw new CheckError(`transaction: ${bytes.length - c.pos} trailing bytes`)
  const body = { version, inputs, outputs, lockTime }
  const base = baseSerialization(body)
  const weight = base.length * 3 + bytes.length
  return { ...body, txid: sha256d(base), weight, vsize: Math.ceil(weight / 4) }
}

const SIGHASH_DEFAULT = 0x00
const SIGHASH_ALL = 0x01
const SIGHASH_NONE = 0x02
const SIGHASH_SINGLE = 0x03
const SIGHASH_ANYONECANPAY = 0x80
const VALID_HASH_TYPES = new Set([0x00, 0x01, 0x02, 0x03, 0x81, 0x82, 0x83])

/** What BIP341 needs of a spent output. */
export interface SpentOutput {
  amountSats: bigint
  scriptPubKey: Uint8Array
}

/**
 * BIP341 signature hash of input `index` for a key-path spend (ext_flag 0), with `hashType`.
 * Throws `CheckError` for an invalid hash type or SIGHASH_SINGLE without a matching output.
 */
export function taprootSighash(
  tx: Pick<ParsedTx, 'version' | 'inputs' | 'outputs' | 'lockTime'>,
  index: number,
  spent: readonly SpentOutput[],
  hashType: number,
  annex?: Uint8Array
): Uint8Array {
  if (!VALID_HASH_TYPES.has(hashType)) throw new CheckError(`hash type 0x${hashType.toString(16)} is not valid`)
  if (spent.length !== tx.inputs.length)
    throw new CheckError(`expected ${tx.inputs.length} spent outputs, got ${spent.length}`)
  const out = hashType === SIGHASH_DEFAULT ? SIGHASH_ALL : hashType & 3
  const anyoneCanPay = (hashType & SIGHASH_ANYONECANPAY) !== 0
  const parts: Uint8Array[] = [Uint8Array.of(0x00, hashType), u32le(tx.version), u32le(tx.lockTime)]
  if (!anyoneCanPay) {
    parts.push(sha256(concatBytes(...tx.inputs.flatMap((i) => [i.txid, u32le(i.vout)]))))
    parts.push(sha256(concatBytes(...spent.map((s) => u64le(s.amountSats)))))
    parts.push(sha256(concatBytes(...spent.map((s) => varbytes(s.scriptPubKey)))))
    parts.push(sha256(concatBytes(...tx.inputs.map((i) => u32le(i.sequence)))))
  }
  if (out !== SIGHASH_NONE && out !== SIGHASH_SINGLE) {
    parts.push(
      sha256(concatBytes(...tx.outputs.map((o) => concatBytes(u64le(o.amountSats), varbytes(o.scriptPubKey)))))
    )
  }
  parts.push(Uint8Array.of(annex === undefined ? 0 : 1))
  if (anyoneCanPay) {
    const i = tx.inputs[index]!
    parts.push(
      i.txid,
      u32le(i.vout),
      u64le(spent[index]!.amountSats),
      varbytes(spent[index]!.scriptPubKey),
      u32le(i.sequence)
    )
  } else {
    parts.push(u32le(index))
  }
  if (annex !== undefined) parts.push(sha256(varbytes(annex)))
  if (out === SIGHASH_SINGLE) {
    const o = tx.outputs[index]
    if (o === undefined) throw new CheckError(`SIGHASH_SINGLE for input ${index} without output ${index}`)
    parts.push(sha256(concatBytes(u64le(o.amountSats), varbytes(o.scriptPubKey))))
  }
  return taggedHash(TAGS.tapSighash, concatBytes(...parts))
}

export interface CheckOptions {
  /** Refuse unless the fee is exactly this (graph transactions: 0). */
  expectedFeeSats?: bigint
  /** Check relay policy too (default true): version, TRUC size, dust, ephemeral dust. */
  policy?: boolean
  /** Height of the block the transaction would go in: nLockTime must be below it. */
  blockHeight?: number
  /** Per input, the confirmations its prevout has in that block's parent: BIP68 locks must be met. */
  prevoutConfirmations?: readonly number[]
  /** It is the TRUC child of an unconfirmed v3 parent: at most 1,000 vB. */
  trucChild?: boolean
}

export interface CheckedTx {
  ok: true
  txid: Uint8Array
  feeSats: bigint
  vsize: number
  /** Largest BIP68 relative lock of its inputs, in blocks. */
  waitBlocks: number
  /** First height that may include it (nLockTime + 1 when enforced), or 0. */
  notBeforeHeight: number
}

export type CheckVerdict = CheckedTx | { ok: false; reason: string }

function refuse(reason: string): { ok: false; reason: string } {
  return { ok: false, reason }
}

/** Display form of an outpoint (txid as Bitcoin shows it). */
export function describeOutpoint(txid: Uint8Array, vout: number): string {
  return `${toHex(reverseBytes(txid))}:${vout}`
}

/**
 * Check `raw` spending `spends` (one per input, in order). Never throws: the verdict names the
 * first problem found.
 */
export function checkTransaction(raw: Uint8Array, spends: readonly Prevout[], opts: CheckOptions = {}): CheckVerdict {
  let tx: ParsedTx
  try {
    tx = parseTransaction(raw)
  } catch (e) {
    return refuse(`malformed transaction: ${(e as Error).message}`)
  }
  if (spends.length !== tx.inputs.length) return refuse(`spends ${tx.inputs.length} outputs, ${spends.length} given`)
  let inSats = 0n
  let lockEnforced = false
  let waitBlocks = 0
  for (let i = 0; i < tx.inputs.length; i++) {
    const inp = tx.inputs[i]!
    const prev = spends[i]!
    if (!equalBytes(inp.txid, prev.txid) || inp.vout !== prev.vout) {
      return refuse(
        `input ${i}: spends ${describeOutpoint(inp.txid, inp.vout)}, but the output given is ${describeOutpoint(prev.txid, prev.vout)}`
      )
    }
    if (prev.amountSats < 0n || prev.amountSats > MAX_MONEY_SATS)
      return refuse(`input ${i}: spent amount ${prev.amountSats} out of range`)
    inSats += prev.amountSats
    if (inp.scriptSig.length !== 0) return refuse(`input ${i}: scriptSig must be empty for a witness spend`)
    if (inp.sequence !== 0xffff_ffff) lockEnforced = true
    const v = checkWitness(tx, i, spends)
    if (v !== null) return refuse(`input ${i}: ${v}`)
    if (tx.version >= 2 && (inp.sequence & SEQUENCE_DISABLE_FLAG) === 0) {
      if (inp.sequence & SEQUENCE_TYPE_FLAG)
        return refuse(
          `input ${i}: nSequence 0x${inp.sequence.toString(16)} is a time-based relative lock (the pool uses blocks only)`
        )
      const blocks = inp.sequence & SEQUENCE_MASK
      waitBlocks = Math.max(waitBlocks, blocks)
      const conf = opts.prevoutConfirmations?.[i]
      if (conf !== undefined && conf < blocks)
        return refuse(`input ${i}: relative timelock of ${blocks} blocks, the spent output has ${conf} confirmations`)
    }
  }
  let outSats = 0n
  for (const o of tx.outputs) outSats += o.amountSats
  if (outSats > MAX_MONEY_SATS) return refuse(`outputs: total ${outSats} exceeds 21 million BTC`)
  if (outSats > inSats) return refuse(`outputs pay ${outSats} sats, inputs hold ${inSats}`)
  const feeSats = inSats - outSats
  if (opts.expectedFeeSats !== undefined && feeSats !== opts.expectedFeeSats)
    return refuse(`fee is ${feeSats} sats, expected ${opts.expectedFeeSats}`)
  let notBeforeHeight = 0
  if (lockEnforced && tx.lockTime > 0) {
    if (tx.lockTime >= LOCKTIME_THRESHOLD)
      return refuse(`nLockTime ${tx.lockTime} is a time (the pool uses heights only)`)
    notBeforeHeight = tx.lockTime + 1
    if (opts.blockHeight !== undefined && opts.blockHeight < notBeforeHeight)
      return refuse(`nLockTime ${tx.lockTime}: not final in a block at height ${opts.blockHeight}`)
  }
  if (opts.policy ?? true) {
    const p = checkPolicy(tx, feeSats)
    if (p !== null) return refuse(p)
    if (opts.trucChild === true && (tx.version !== 3 || tx.vsize > TRUC_CHILD_MAX_VSIZE))
      return refuse(
        `a TRUC child is v3 and at most ${TRUC_CHILD_MAX_VSIZE} vB, this one v${tx.version}, ${tx.vsize} vB`
      )
  }
  return { ok: true, txid: tx.txid, feeSats, vsize: tx.vsize, waitBlocks, notBeforeHeight }
}

function checkWitness(tx: ParsedTx, i: number, spends: readonly Prevout[]): string | null {
  const inp = tx.inputs[i]!
  const script = spends[i]!.scriptPubKey
  if (isP2A(script)) return inp.witness.length === 0 ? null : 'a P2A anchor is spent with an empty witness'
  const key = p2trOutputKey(script)
  if (key === null)
    return `spends a ${script.length}-byte script that is neither P2TR nor P2A (the pool spends no other)`
  if (inp.witness.length === 0) return 'no witness'
  if (inp.witness.length >= 2 && inp.witness[inp.witness.length - 1]![0] === 0x50)
    return 'carries an annex (not used by the pool, not relayed)'
  if (inp.witness.length !== 1)
    return `witness has ${inp.witness.length} items: a script-path spend (the pool signs by key path only)`
  const sig = inp.witness[0]!
  if (sig.length !== 64 && sig.length !== 65) return `signature is ${sig.length} bytes, expected 64 or 65`
  const hashType = sig.length === 65 ? sig[64]! : SIGHASH_DEFAULT
  if (sig.length === 65 && hashType === SIGHASH_DEFAULT) return 'a 65-byte signature may not use hash type 0x00'
  let msg: Uint8Array
  try {
    msg = taprootSighash(tx, i, spends, hashType)
  } catch (e) {
    return (e as Error).message
  }
  let ok = false
  try {
    ok = schnorr.verify(sig.subarray(0, 64), msg, key)
  } catch {
    ok = false
  }
  return ok
    ? null
    : `signature does not verify against output key ${toHex(key).slice(0, 16)}… (sighash ${toHex(msg).slice(0, 16)}…)`
}

function checkPolicy(tx: ParsedTx, feeSats: bigint): string | null {
  if (tx.version < 1 || tx.version > 3) return `version ${tx.version} is not standard (1, 2 or 3)`
  if (tx.version === 3 && tx.vsize > TRUC_MAX_VSIZE)
    return `a TRUC (v3) transaction is at most ${TRUC_MAX_VSIZE} vB, this one ${tx.vsize}`
  let dust = 0
  for (let k = 0; k < tx.outputs.length; k++) {
    const o = tx.outputs[k]!
    if (isP2A(o.scriptPubKey)) {
      if (o.amountSats < P2A_DUST_SATS) dust++
    } else if (p2trOutputKey(o.scriptPubKey) !== null) {
      if (o.amountSats < P2TR_DUST_SATS)
        return `output ${k}: ${o.amountSats} sats is below the P2TR dust limit ${P2TR_DUST_SATS}`
    } else {
      return `output ${k}: script is neither P2TR nor P2A (the pool creates no other)`
    }
  }
  if (dust > 1) return `${dust} dust anchors: at most one`
  if (dust === 1 && feeSats !== 0n)
    return `a dust anchor is only relayed in a zero-fee transaction (ephemeral dust), this one pays ${feeSats} sats`
  if (dust === 1 && tx.version !== 3) return 'a dust anchor is only relayed in a TRUC (v3) transaction'
  return null
}
