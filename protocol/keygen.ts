/**
 * Fresh member keys from the platform's secure random source.
 *
 * This is the only place in protocol/ that draws randomness itself; everything else takes its
 * randomness (signing aux data, round ids) from the caller so that it stays reproducible.
 */
import { schnorr } from '@noble/curves/secp256k1.js'
import { keyPairFromSecret, type KeyPair } from './keys.js'

/** A new random secret key (32 bytes, cryptographically secure). */
export function generateSecretKey(): Uint8Array {
  return new Uint8Array(schnorr.utils.randomSecretKey())
}

/** A new random key pair. */
export function generateKeyPair(): KeyPair {
  return keyPairFromSecret(generateSecretKey())
}
