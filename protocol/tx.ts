/**
 * Modelled Bitcoin transactions.
 *
 * A `Tx` has a version, inputs (outpoints), outputs (an amount paid to a 32-byte x-only key) and a
 * locktime. Its canonical encoding is exactly Bitcoin's non-witness transaction serialization for
 * the corresponding Taproot transaction:
 *
 *     version u32 | varint n_in | n_in × (txid 32 | vout u32 | scriptSig: varint 0 | sequence u32)
 *     | varint n_out | n_out × (value u64 | scriptPubKey: varint 34 | 0x51 0x20 key32) | locktime u32
 *
 * Every input has an empty scriptSig and sequence `TX_SEQUENCE` (0xfffffffe: final for replacement,
 * but nLockTime enforced); every output is a P2TR script `OP_1 <32-byte key>`. So `txid` (double
 * sha256 of this encoding, in Bitcoin's internal byte order) is the txid the same transaction would
 * have on chain, and a later step can turn these into real, witnessed transactions.
 */
import { reverseBytes, toHex } from './bytes.js'
import { EncodeError, Writer, decodeAll, type Reader } from './codec.js'
import {
  checkObjectSize,
  outpointKey,
  readOutpoint,
  readSats,
  writeOutpoint,
  writeSats,
  type Outpoint
} from './common.js'
import { sha256d } from './hash.js'
import { MAX_MONEY_SATS, MAX_TX_INPUTS, MAX_TX_OUTPUTS } from './limits.js'

/** Transaction version used for every modelled transaction (BIP68-capable). */
export const TX_VERSION = 2
/** nSequence of every input: enables nLockTime, does not signal replaceability. */
export const TX_SEQUENCE = 0xffff_fffe
/** P2TR scriptPubKey prefix: OP_1 (0x51), push 32 bytes (0x20). */
const P2TR_PREFIX_0 = 0x51
const P2TR_PREFIX_1 = 0x20
const P2TR_SCRIPT_BYTES = 34
const MIN_INPUT_BYTES = 32 + 4 + 1 + 4
const MIN_OUTPUT_BYTES = 8 + 1 + P2TR_SCRIPT_BYTES

export interface TxOutput {
  valueSats: bigint
  /** x-only key the output pays to (P2TR output key). */
  key: Uint8Array
}

export interface Tx {
  version: number
  inputs: Outpoint[]
  outputs: TxOutput[]
  locktime: number
}

/** Append the canonical encoding of `tx`. */
export function writeTx(w: Writer, tx: Tx): void {
  w.u32(tx.version, 'version')
  if (tx.inputs.length < 1) throw new EncodeError('inputs', 'at least one input required')
  const seen = new Set<string>()
  w.array(
    tx.inputs,
    MAX_TX_INPUTS,
    (w, input) => {
      const k = outpointKey(input)
      if (seen.has(k)) throw new EncodeError('', 'outpoint spent twice in the same transaction')
      seen.add(k)
      writeOutpoint(w, input)
      w.varint(0) // empty scriptSig
      w.u32(TX_SEQUENCE)
    },
    'inputs'
  )
  if (tx.outputs.length < 1) throw new EncodeError('outputs', 'at least one output required')
  let total = 0n
  w.array(
    tx.outputs,
    MAX_TX_OUTPUTS,
    (w, out) => {
      writeSats(w, out.valueSats, 'valueSats')
      total += out.valueSats
      w.varint(P2TR_SCRIPT_BYTES).u8(P2TR_PREFIX_0).u8(P2TR_PREFIX_1).bytes32(out.key, 'key')
    },
    'outputs'
  )
  if (total > MAX_MONEY_SATS) throw new EncodeError('outputs', `total ${total} exceeds 21 million BTC`)
  w.u32(tx.locktime, 'locktime')
}

/** Read one transaction (the fields of a `Tx`, reported under `name`). */
export function readTx(r: Reader, name: string): Tx {
  return r.field(name, (r) => {
    const version = r.u32('version')
    const seen = new Set<string>()
    const inputs = r.array(
      'inputs',
      MAX_TX_INPUTS,
      (r) => {
        const o = readOutpoint(r, 'outpoint')
        const k = outpointKey(o)
        if (seen.has(k)) r.fail('outpoint', 'spent twice in the same transaction')
        seen.add(k)
        const scriptLen = r.varint('scriptSig')
        if (scriptLen !== 0) r.fail('scriptSig', `expected an empty scriptSig, got length ${scriptLen}`)
        const seq = r.u32('sequence')
        if (seq !== TX_SEQUENCE) r.fail('sequence', `expected 0x${TX_SEQUENCE.toString(16)}, got 0x${seq.toString(16)}`)
        return o
      },
      MIN_INPUT_BYTES
    )
    if (inputs.length < 1) r.fail('inputs', 'at least one input required')
    let total = 0n
    const outputs = r.array(
      'outputs',
      MAX_TX_OUTPUTS,
      (r) => {
        const valueSats = readSats(r, 'valueSats')
        total += valueSats
        const len = r.varint('scriptPubKey')
        if (len !== P2TR_SCRIPT_BYTES)
          r.fail('scriptPubKey', `expected a ${P2TR_SCRIPT_BYTES}-byte P2TR script, got length ${len}`)
        const op = r.u8('scriptPubKey')
        const push = r.u8('scriptPubKey')
        if (op !== P2TR_PREFIX_0 || push !== P2TR_PREFIX_1)
          r.fail('scriptPubKey', 'not a P2TR script (OP_1 <32 bytes>)')
        return { valueSats, key: r.bytes32('key') }
      },
      MIN_OUTPUT_BYTES
    )
    if (outputs.length < 1) r.fail('outputs', 'at least one output required')
    if (total > MAX_MONEY_SATS) r.fail('outputs', `total ${total} exceeds 21 million BTC`)
    const locktime = r.u32('locktime')
    return { version, inputs, outputs, locktime }
  })
}

/** Canonical encoding (Bitcoin non-witness serialization). */
export function encodeTx(tx: Tx): Uint8Array {
  const w = new Writer(64 + tx.inputs.length * 41 + tx.outputs.length * 43)
  w.field('tx', (w) => writeTx(w, tx))
  return w.finish()
}

/** Decode a transaction; throws `DecodeError` naming the field. */
export function decodeTx(bytes: Uint8Array): Tx {
  checkObjectSize(bytes, 'tx')
  return decodeAll(bytes, 'tx', (r) => readTx(r, ''))
}

/** Double-sha256 of the canonical encoding, in Bitcoin's internal byte order. */
export function txid(tx: Tx): Uint8Array {
  return sha256d(encodeTx(tx))
}

/** A txid as Bitcoin displays it (byte-reversed hex). */
export function txidToDisplayHex(id: Uint8Array): string {
  return toHex(reverseBytes(id))
}

/** Sum of the outputs' values. */
export function totalOutputSats(tx: Tx): bigint {
  let s = 0n
  for (const o of tx.outputs) s += o.valueSats
  return s
}
