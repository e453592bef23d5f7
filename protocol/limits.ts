/**
 * Every size and range limit of the protocol objects, in one place.
 * Changing one of these changes what decoders accept: treat it as a protocol change.
 */

/**
 * Most members in a pool (and so most actives in a partition, inputs in an intermediate Update).
 * Sized for pools of 1,000 members: the largest object it allows, evidence of two 1,024-active
 * statements, still fits `MAX_OBJECT_BYTES` (about 240 KiB; test/protocol/objects.test.ts).
 */
export const MAX_MEMBERS = 1_024
/** Evidence the board keeps per equivocating member: one proves the point, a few more help, more is spam. */
export const MAX_EVIDENCE_PER_MEMBER = 16
/** Longest reason the board records for a rejected entry, in characters. */
export const MAX_REASON_CHARS = 1_000
/** Fewest members in a root pool. A partition (sub-pool) may have a single member. */
export const MIN_GENESIS_MEMBERS = 2
/** Longest libp2p peer id string, in UTF-8 bytes (base58btc or multibase text, alphanumeric). */
export const MAX_PEER_ID_BYTES = 128
/** 21 million BTC in satoshis: no balance, sum or output value may exceed it. */
export const MAX_MONEY_SATS = 2_100_000_000_000_000n
/** Kick-out delay X, in blocks: at least one block, at most about one year. */
export const MIN_KICKOUT_DELAY_BLOCKS = 1
export const MAX_KICKOUT_DELAY_BLOCKS = 52_560
/**
 * Bitcoin's nLockTime threshold: values below it are block heights. Every height in the protocol,
 * and every kick-out locktime `T + X`, must stay below it.
 */
export const LOCKTIME_THRESHOLD = 500_000_000
/** Inputs and outputs of a modelled transaction. */
export const MAX_TX_INPUTS = MAX_MEMBERS
export const MAX_TX_OUTPUTS = MAX_MEMBERS
/** Largest encoding any protocol decoder accepts (checked before parsing). */
export const MAX_OBJECT_BYTES = 256 * 1024
/**
 * Deepest nesting of kick-out continuations in a pool reference. Each kick-out removes a member
 * and a partition's reference starts afresh, so a real chain is at most `MAX_MEMBERS - 1` deep.
 */
export const MAX_POOL_REF_DEPTH = MAX_MEMBERS
/** Largest state number (u32 on the wire). */
export const MAX_STATE_NUMBER = 0xffff_ffff
