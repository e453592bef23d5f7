/**
 * poolboard protocol: the pool's objects, their canonical encodings, hashes, signatures and rules.
 * Pure: no I/O, no clock, no ambient randomness (except `keygen.ts`, exported separately).
 */
export * from './bytes.js'
export * from './codec.js'
export * from './common.js'
export * from './continuation.js'
export * from './evidence.js'
export * from './genesis.js'
export * from './hash.js'
export * from './keys.js'
export * from './limits.js'
export * from './requests.js'
export * from './rules.js'
export * from './state.js'
export * from './statement.js'
export * from './tx.js'
