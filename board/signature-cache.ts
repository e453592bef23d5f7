import assert from 'node:assert/strict'
import { verifyHash, verifyHashBatch, type Bip340Check, type VerifySignature } from '../protocol/keys.js'

export interface SignatureCacheStats {
  /** Verifications answered from the cache. */
  hits: number
  /** Verifications that had to run the curve arithmetic. */
  misses: number
  /** Of the misses, how many signatures did not verify. */
  invalid: number
  /** Valid signatures remembered now. */
  entries: number
  maxEntries: number
}

export const DEFAULT_SIGNATURE_CACHE_ENTRIES = 65_536
const MAX_SIGNATURE_CACHE_ENTRIES = 10_000_000

/**
 * A bounded LRU of signatures known to be valid, keyed by message hash ‖ key ‖ signature,
 * so that a signature checked once on this node (when gossip brings it, or when the board applies
 * it) is never checked again: a BIP340 verification costs tens of microseconds (libsecp256k1) to a millisecond (noble), a lookup far less.
 *
 * Only valid signatures are remembered. A forged signature is checked every time it is offered,
 * but forgeries cannot push valid entries out of the cache.
 *
 * The cache changes no answer, only how fast it comes, so the board stays deterministic with or
 * without it. One instance is meant to be shared by everything on a node that verifies.
 */
export class SignatureCache {
  private readonly valid = new Map<string, true>()
  private hits = 0
  private misses = 0
  private invalid = 0

  constructor(
    readonly maxEntries: number = DEFAULT_SIGNATURE_CACHE_ENTRIES,
    private readonly verifyFn: VerifySignature = verifyHash
  ) {
    assert(
      Number.isInteger(maxEntries) && maxEntries >= 1 && maxEntries <= MAX_SIGNATURE_CACHE_ENTRIES,
      `signature cache size must be within 1..${MAX_SIGNATURE_CACHE_ENTRIES}, got ${maxEntries}`
    )
  }

  /** Same answer as `verifyHash(signature, hash, publicKey)`. */
  verify(signature: Uint8Array, hash: Uint8Array, publicKey: Uint8Array): boolean {
    if (signature.length !== 64 || hash.length !== 32 || publicKey.length !== 32) {
      this.misses++
      this.invalid++
      return false
    }
    const key = cacheKey(signature, hash, publicKey)
    if (this.valid.has(key)) {
      this.hits++
      // Refresh its place: the least recently used entry is the first in the map's order.
      this.valid.delete(key)
      this.valid.set(key, true)
      return true
    }
    this.misses++
    if (!this.verifyFn(signature, hash, publicKey)) {
      this.invalid++
      return false
    }
    this.insert(key)
    return true
  }

  /**
   * Verifies the checks not yet known valid as one batch (libsecp256k1's batch verification when
   * the cache runs on `verifyHash`) and remembers the valid ones, so that the `verify` calls that
   * follow (applying an entry) are lookups. A batch that fails is checked one by one; the counters
   * then count the single checks. Changes no answer.
   */
  prepare(checks: readonly Bip340Check[]): void {
    const unknown = checks.filter((c) => !this.knows(c.signature, c.hash, c.key))
    if (unknown.length === 0) return
    if (this.verifyFn === verifyHash && unknown.length > 1 && verifyHashBatch(unknown)) {
      this.misses += unknown.length
      for (const c of unknown) this.remember(c.signature, c.hash, c.key)
      return
    }
    for (const c of unknown) this.verify(c.signature, c.hash, c.key)
  }

  /** Whether this triple is already known valid (no verification, no counting). */
  knows(signature: Uint8Array, hash: Uint8Array, publicKey: Uint8Array): boolean {
    return (
      signature.length === 64 &&
      hash.length === 32 &&
      publicKey.length === 32 &&
      this.valid.has(cacheKey(signature, hash, publicKey))
    )
  }

  /**
   * Records a triple that was verified elsewhere on this node (a verification worker): the caller
   * vouches that `verifyHash(signature, hash, publicKey)` returned true.
   */
  remember(signature: Uint8Array, hash: Uint8Array, publicKey: Uint8Array): void {
    assert(signature.length === 64 && hash.length === 32 && publicKey.length === 32, 'remember: malformed triple')
    const key = cacheKey(signature, hash, publicKey)
    if (!this.valid.has(key)) this.insert(key)
  }

  private insert(key: string): void {
    if (this.valid.size >= this.maxEntries) {
      const oldest = this.valid.keys().next()
      assert(oldest.done !== true)
      this.valid.delete(oldest.value)
    }
    this.valid.set(key, true)
  }

  /** A function with `verifyHash`'s signature that goes through this cache. */
  get verifier(): VerifySignature {
    return (signature, hash, publicKey) => this.verify(signature, hash, publicKey)
  }

  stats(): SignatureCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      invalid: this.invalid,
      entries: this.valid.size,
      maxEntries: this.maxEntries
    }
  }
}

/** The triple itself as a one-byte string (128 characters): as unique as the triple, and cheaper to make than a hash of it. */
function cacheKey(signature: Uint8Array, hash: Uint8Array, publicKey: Uint8Array): string {
  const buf = Buffer.allocUnsafe(128)
  buf.set(hash, 0)
  buf.set(publicKey, 32)
  buf.set(signature, 64)
  return buf.toString('latin1')
}
