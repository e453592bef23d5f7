/**
 * Member keys and BIP340 signatures.
 *
 * A member key is a BIP340 x-only secp256k1 public key (32 bytes). Pool objects are signed over a
 * 32-byte tagged hash (see hash.ts), never over raw encodings. Signing takes its auxiliary
 * randomness from the caller; the default is 32 zero bytes, which makes signatures reproducible
 * (BIP340 nonces are still derived from the secret key and the message, so this is safe, only less
 * hardened against side channels). Verification never throws: garbage in gives `false`. The
 * arithmetic is libsecp256k1's when its binding loads, else noble's (bip340.ts): same answers.
 */
import { schnorr } from '@noble/curves/secp256k1.js'
import { BIP340, type Bip340Check } from './bip340.js'
import { TAGS, taggedHash } from './hash.js'

export type { Bip340Check } from './bip340.js'

export const PUBLIC_KEY_BYTES = 32
export const SECRET_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64
export const HASH_BYTES = 32

/** 32 zero bytes: the deterministic auxiliary randomness. */
export const ZERO_AUX: Uint8Array = new Uint8Array(32)

export interface KeyPair {
  secretKey: Uint8Array
  /** x-only, 32 bytes */
  publicKey: Uint8Array
}

/** The x-only public key of `secretKey`; throws `RangeError` if the secret key is invalid. */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_BYTES) {
    throw new RangeError(`secret key: expected ${SECRET_KEY_BYTES} bytes`)
  }
  try {
    return BIP340.publicKey(secretKey)
  } catch (e) {
    throw new RangeError(`secret key: invalid (${(e as Error).message})`)
  }
}

/** `{ secretKey, publicKey }` for a given secret key. */
export function keyPairFromSecret(secretKey: Uint8Array): KeyPair {
  return { secretKey: new Uint8Array(secretKey), publicKey: publicKeyOf(secretKey) }
}

/**
 * A secret key derived deterministically from `seed` (any length). For tests, simulations and
 * reproducible labs only: real members generate keys with `generateSecretKey` (keygen.ts).
 */
export function secretKeyFromSeed(seed: Uint8Array): Uint8Array {
  for (let counter = 0; counter < 256; counter++) {
    const candidate = taggedHash(TAGS.keySeed, seed, new Uint8Array([counter]))
    if (isValidSecretKey(candidate)) return candidate
  }
  // Each candidate is invalid with probability about 2^-128.
  throw new Error('unreachable: no valid key from seed')
}

/** True if `secretKey` is 32 bytes encoding a scalar in [1, n-1]. */
export function isValidSecretKey(secretKey: Uint8Array): boolean {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_BYTES) return false
  try {
    BIP340.publicKey(secretKey)
    return true
  } catch {
    return false
  }
}

/** True if `publicKey` is 32 bytes that are the x coordinate of a curve point (BIP340 lift_x). */
export function isValidPublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_BYTES) return false
  try {
    let x = 0n
    for (const b of publicKey) x = (x << 8n) | BigInt(b)
    schnorr.utils.lift_x(x)
    return true
  } catch {
    return false
  }
}

/**
 * BIP340 signature of a 32-byte hash (normally a tagged hash from hash.ts).
 * `auxRand` is 32 bytes of caller-supplied randomness, or zeroes for reproducible signatures.
 */
export function signHash(hash: Uint8Array, secretKey: Uint8Array, auxRand: Uint8Array = ZERO_AUX): Uint8Array {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_BYTES)
    throw new RangeError(`hash: expected ${HASH_BYTES} bytes`)
  if (!(auxRand instanceof Uint8Array) || auxRand.length !== 32) throw new RangeError('auxRand: expected 32 bytes')
  if (!isValidSecretKey(secretKey)) throw new RangeError('secret key: invalid')
  return BIP340.sign(hash, secretKey, auxRand)
}

/**
 * Verifies a BIP340 signature over a 32-byte hash and never throws: `verifyHash`, or something with
 * its answers (a node's signature cache). Verifiers of signed objects take one as an option.
 */
export type VerifySignature = (signature: Uint8Array, hash: Uint8Array, publicKey: Uint8Array) => boolean

/** Verify a BIP340 signature over a 32-byte hash. Returns false (never throws) on any bad input. */
export function verifyHash(signature: Uint8Array, hash: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_BYTES) return false
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_BYTES) return false
  return BIP340.verify(signature, hash, publicKey)
}

function wellFormed(c: Bip340Check): boolean {
  return (
    c.signature instanceof Uint8Array &&
    c.signature.length === SIGNATURE_BYTES &&
    c.hash instanceof Uint8Array &&
    c.hash.length === HASH_BYTES &&
    c.key instanceof Uint8Array &&
    c.key.length === PUBLIC_KEY_BYTES
  )
}

/**
 * True if every check verifies (`verifyHash` on each), in one batch where the backend has batch
 * verification (about twice as fast per signature). A false says nothing about which one failed:
 * verify them one by one to find out. Never throws.
 */
export function verifyHashBatch(checks: readonly Bip340Check[]): boolean {
  if (!checks.every(wellFormed)) return false
  return BIP340.verifyBatch(checks)
}

/** Which BIP340 implementation this process runs: `libsecp256k1` (native binding) or `noble`. */
export function bip340Backend(): 'libsecp256k1' | 'noble' {
  return BIP340.name
}
