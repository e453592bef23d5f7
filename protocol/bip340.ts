/**
 * The BIP340 arithmetic behind keys.ts: libsecp256k1 through the `bcrypto` native binding when it
 * loads (about 16,000 verifications/s on one core here, more in batches), else `@noble/curves`
 * (pure JavaScript, about 700/s). Both implement BIP340 exactly, so they give the same answer for
 * every input and the same signature for the same key, message and auxiliary randomness
 * (test/protocol/bip340.test.ts feeds both the BIP's vectors and tampered signatures); which one
 * runs changes only speed. The binding is compiled by node-gyp when the package is installed; a
 * machine where that failed (or `NODE_BACKEND=js`, bcrypto's own switch to its JavaScript code)
 * runs on noble.
 *
 * Inputs are checked by the callers in keys.ts (lengths); these functions may assume 32-byte
 * hashes and keys and 64-byte signatures, and never throw on bad curve data.
 */
import { createRequire } from 'node:module'
import { schnorr } from '@noble/curves/secp256k1.js'

/** One check: `signature` over the 32-byte `hash` by the x-only `key`. */
export interface Bip340Check {
  signature: Uint8Array
  hash: Uint8Array
  key: Uint8Array
}

export interface Bip340 {
  readonly name: 'libsecp256k1' | 'noble'
  verify(signature: Uint8Array, hash: Uint8Array, key: Uint8Array): boolean
  /** True if every check verifies (one false says nothing about which). */
  verifyBatch(checks: readonly Bip340Check[]): boolean
  sign(hash: Uint8Array, secretKey: Uint8Array, auxRand: Uint8Array): Uint8Array
  /** The x-only public key; throws on an invalid secret key. */
  publicKey(secretKey: Uint8Array): Uint8Array
}

/** The npm module of the native binding, for code that must load it itself (worker threads). */
export const NATIVE_BIP340_MODULE = 'bcrypto/lib/schnorr.js'
/** bcrypto's `native` flag when its libsecp256k1 backend is in use (0 is its JavaScript code). */
export const NATIVE_BIP340_FLAG = 2

export const nobleBip340: Bip340 = {
  name: 'noble',
  verify(signature, hash, key) {
    try {
      return schnorr.verify(signature, hash, key)
    } catch {
      return false
    }
  },
  verifyBatch(checks) {
    return checks.every((c) => this.verify(c.signature, c.hash, c.key))
  },
  sign(hash, secretKey, auxRand) {
    return new Uint8Array(schnorr.sign(hash, secretKey, auxRand))
  },
  publicKey(secretKey) {
    return new Uint8Array(schnorr.getPublicKey(secretKey))
  }
}

interface BcryptoSchnorr {
  native: number
  verify(msg: Buffer, sig: Buffer, key: Buffer): boolean
  verifyBatch(batch: Array<[Buffer, Buffer, Buffer]>): boolean
  sign(msg: Buffer, key: Buffer, aux: Buffer): Buffer
  publicKeyCreate(key: Buffer): Buffer
  privateKeyVerify(key: Buffer): boolean
}

/** A Buffer over the same bytes (no copy): the binding accepts only Buffers. */
function buf(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** The libsecp256k1 backend, or null when the binding is missing, failed to build, or is not native. */
export function loadNativeBip340(): Bip340 | null {
  let lib: BcryptoSchnorr
  try {
    lib = createRequire(import.meta.url)(NATIVE_BIP340_MODULE) as BcryptoSchnorr
  } catch {
    return null
  }
  if (lib.native !== NATIVE_BIP340_FLAG) return null
  return {
    name: 'libsecp256k1',
    verify(signature, hash, key) {
      try {
        return lib.verify(buf(hash), buf(signature), buf(key))
      } catch {
        return false
      }
    },
    verifyBatch(checks) {
      if (checks.length === 0) return true
      try {
        return lib.verifyBatch(checks.map((c) => [buf(c.hash), buf(c.signature), buf(c.key)]))
      } catch {
        return false
      }
    },
    sign(hash, secretKey, auxRand) {
      if (!lib.privateKeyVerify(buf(secretKey))) throw new RangeError('secret key: invalid')
      return new Uint8Array(lib.sign(buf(hash), buf(secretKey), buf(auxRand)))
    },
    publicKey(secretKey) {
      if (!lib.privateKeyVerify(buf(secretKey))) throw new RangeError('secret key: invalid')
      return new Uint8Array(lib.publicKeyCreate(buf(secretKey)))
    }
  }
}

/** What this process uses: the native binding when it loads, noble otherwise. */
export const BIP340: Bip340 = loadNativeBip340() ?? nobleBip340
