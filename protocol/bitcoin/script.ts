/**
 * Output scripts, Taproot keys and the Bitcoin policy numbers the pool's transactions rely on.
 *
 * Every output the graph creates is either P2TR (`OP_1 <32-byte output key>`, key path only: the
 * internal key is tweaked with an empty script tree as BIP86 prescribes) or the P2A anchor
 * (`OP_1 <4e73>`). Keys are the pool's x-only member keys (BIP340).
 */
import { schnorr } from '@noble/curves/secp256k1.js'
import { bech32m } from '@scure/base'
import { concatBytes, equalBytes } from '../bytes.js'
import { TAGS, taggedHash } from '../hash.js'

const Point = schnorr.Point
const CURVE_ORDER = Point.CURVE().n

/** Every graph transaction is TRUC (BIP431): at most one unconfirmed ancestor or child, no pinning. */
export const GRAPH_TX_VERSION = 3
/** nSequence of an input without relative timelock (BIP68 disabled, nLockTime enforced). */
export const SEQUENCE_NO_RELATIVE_LOCK = 0xffff_fffe
/** BIP68: the disable flag, the type flag (set = 512-second units) and the value mask. */
export const SEQUENCE_DISABLE_FLAG = 0x8000_0000
export const SEQUENCE_TYPE_FLAG = 0x0040_0000
export const SEQUENCE_MASK = 0x0000_ffff
/** Largest relative timelock in blocks that nSequence can hold. */
export const MAX_RELATIVE_LOCK_BLOCKS = 0xffff

/** Bitcoin Core's dust limits at 3 sat/vB: a P2TR output below 330 sats is not relayed. */
export const P2TR_DUST_SATS = 330n
/** P2A below 240 sats is dust: allowed only as the one zero-fee "ephemeral dust" output (Core 29+). */
export const P2A_DUST_SATS = 240n
/** TRUC limits: a v3 transaction at most 10,000 vB, a v3 child of an unconfirmed v3 parent 1,000 vB. */
export const TRUC_MAX_VSIZE = 10_000
export const TRUC_CHILD_MAX_VSIZE = 1_000

/** P2A: `OP_1 OP_PUSHBYTES_2 4e73`, spendable by anyone with an empty witness. */
export const P2A_SCRIPT: Uint8Array = Uint8Array.of(0x51, 0x02, 0x4e, 0x73)

/** `OP_1 <32-byte key>`. */
export function p2trScript(outputKey: Uint8Array): Uint8Array {
  if (outputKey.length !== 32) throw new RangeError(`output key: expected 32 bytes, got ${outputKey.length}`)
  return concatBytes(Uint8Array.of(0x51, 0x20), outputKey)
}

/** The output key of a P2TR script, or null if `script` is not P2TR. */
export function p2trOutputKey(script: Uint8Array): Uint8Array | null {
  if (script.length !== 34 || script[0] !== 0x51 || script[1] !== 0x20) return null
  return script.subarray(2)
}

export function isP2A(script: Uint8Array): boolean {
  return equalBytes(script, P2A_SCRIPT)
}

function bytesToBigInt(b: Uint8Array): bigint {
  let x = 0n
  for (const v of b) x = (x << 8n) | BigInt(v)
  return x
}

/** BIP341 tweak of internal key `p` (x-only) committing to `merkleRoot` (none: key path only). */
export function tapTweak(internalKey: Uint8Array, merkleRoot?: Uint8Array): Uint8Array {
  return taggedHash(TAGS.tapTweak, internalKey, merkleRoot ?? new Uint8Array(0))
}

/**
 * The output key `Q = lift_x(P) + t·G` (x-only) and its parity. Throws `RangeError` if `P` is not
 * on the curve or the tweak is out of range (probability about 2^-128).
 */
export function taprootOutputKey(
  internalKey: Uint8Array,
  merkleRoot?: Uint8Array
): { outputKey: Uint8Array; parity: 0 | 1 } {
  if (internalKey.length !== 32) throw new RangeError(`internal key: expected 32 bytes, got ${internalKey.length}`)
  let P: ReturnType<typeof schnorr.utils.lift_x>
  try {
    P = schnorr.utils.lift_x(bytesToBigInt(internalKey))
  } catch {
    throw new RangeError('internal key: not the x coordinate of a curve point')
  }
  const t = bytesToBigInt(tapTweak(internalKey, merkleRoot))
  if (t >= CURVE_ORDER) throw new RangeError('taproot tweak out of range')
  const Q = t === 0n ? P : P.add(Point.BASE.multiply(t))
  const bytes = Q.toBytes(true)
  return { outputKey: bytes.subarray(1), parity: bytes[0] === 3 ? 1 : 0 }
}

/** BIP86 output key of a single member key (the member output). */
export function memberOutputKey(memberKey: Uint8Array): Uint8Array {
  return taprootOutputKey(memberKey).outputKey
}

/**
 * The secret key that signs for `taprootOutputKey(publicKeyOf(secretKey))` by key path (BIP341's
 * `taproot_tweak_seckey`: negate to the even-y internal key, add the tweak; BIP340 signing handles
 * the parity of Q).
 */
export function tweakedSecretKey(secretKey: Uint8Array, merkleRoot?: Uint8Array): Uint8Array {
  let d = bytesToBigInt(secretKey)
  if (d <= 0n || d >= CURVE_ORDER) throw new RangeError('secret key out of range')
  const P = Point.BASE.multiply(d)
  if (P.toBytes(true)[0] === 3) d = CURVE_ORDER - d
  const x = P.toBytes(true).subarray(1)
  const t = bytesToBigInt(tapTweak(x, merkleRoot))
  return bigIntTo32((d + t) % CURVE_ORDER)
}

/** The secret key whose public key is the even-y point of `secretKey`'s x-only key (BIP327 signing). */
export function evenYSecretKey(secretKey: Uint8Array): Uint8Array {
  const d = bytesToBigInt(secretKey)
  if (d <= 0n || d >= CURVE_ORDER) throw new RangeError('secret key out of range')
  return Point.BASE.multiply(d).toBytes(true)[0] === 3 ? bigIntTo32(CURVE_ORDER - d) : new Uint8Array(secretKey)
}

export function bigIntTo32(x: bigint): Uint8Array {
  const out = new Uint8Array(32)
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(x & 0xffn)
    x >>= 8n
  }
  return out
}

// ---- addresses ----

export type Network = 'mainnet' | 'signet' | 'testnet' | 'regtest'
export const NETWORKS: readonly Network[] = ['mainnet', 'signet', 'testnet', 'regtest']
const HRP: Record<Network, string> = { mainnet: 'bc', signet: 'tb', testnet: 'tb', regtest: 'bcrt' }

/** The bech32m (BIP350) segwit v1 address of a P2TR output key. */
export function taprootAddress(network: Network, outputKey: Uint8Array): string {
  const hrp = HRP[network]
  if (hrp === undefined)
    throw new RangeError(`unknown network ${JSON.stringify(network)} (expected ${NETWORKS.join(', ')})`)
  if (outputKey.length !== 32) throw new RangeError(`output key: expected 32 bytes, got ${outputKey.length}`)
  return bech32m.encode(hrp, [1, ...bech32m.toWords(outputKey)])
}

/** The output key of a bech32m P2TR address of `network`; throws `RangeError` naming what is wrong. */
export function decodeTaprootAddress(network: Network, address: string): Uint8Array {
  let d: ReturnType<typeof bech32m.decode>
  try {
    d = bech32m.decode(address as `${string}1${string}`)
  } catch (e) {
    throw new RangeError(`address: not bech32m (${(e as Error).message})`)
  }
  if (d.prefix !== HRP[network]) throw new RangeError(`address: prefix ${d.prefix} is not ${network}'s ${HRP[network]}`)
  if (d.words[0] !== 1) throw new RangeError(`address: witness version ${d.words[0]}, expected 1 (Taproot)`)
  const key = bech32m.fromWords(d.words.slice(1))
  if (key.length !== 32) throw new RangeError(`address: program of ${key.length} bytes, expected 32`)
  return Uint8Array.from(key)
}
