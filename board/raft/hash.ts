// The log's hash chain.
//
// hash(entry) = sha256( "poolboard/raft/entry/v1" || prevHash (32 bytes) || index (u64 BE)
//                       || term (u64 BE) || type (u8: 0 normal, 1 confChange)
//                       || data length (u32 BE) || data )
//
// prevHash is the hash of the entry at index - 1, or the snapshot's hash when index - 1 is the
// snapshot index; the (empty) log before index 1 has the all-zero hash. Because each hash covers
// the previous one, two logs with the same hash at index i are identical up to i.

import { sha256 } from '../../protocol/hash.js'
import type { Entry, EntryType } from './types.js'

export const HASH_BYTES = 32
export const ENTRY_HASH_TAG = 'poolboard/raft/entry/v1'
/** Hash of the empty log (the "entry" at index 0). */
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES)

const TAG_BYTES = new TextEncoder().encode(ENTRY_HASH_TAG)
const HEADER_BYTES = HASH_BYTES + 8 + 8 + 1 + 4

export function entryTypeCode(type: EntryType): number {
  return type === 'normal' ? 0 : 1
}

export function computeEntryHash(
  prevHash: Uint8Array,
  index: number,
  term: number,
  type: EntryType,
  data: Uint8Array
): Uint8Array {
  // One buffer and one one-shot hash: cheaper than a Hash object per entry (entries are small).
  const at = TAG_BYTES.length
  const msg = new Uint8Array(at + HEADER_BYTES + data.length)
  msg.set(TAG_BYTES, 0)
  msg.set(prevHash, at)
  const view = new DataView(msg.buffer)
  setU64(view, at + HASH_BYTES, index)
  setU64(view, at + HASH_BYTES + 8, term)
  view.setUint8(at + HASH_BYTES + 16, entryTypeCode(type))
  view.setUint32(at + HASH_BYTES + 17, data.length)
  msg.set(data, at + HEADER_BYTES)
  return sha256(msg)
}

function setU64(view: DataView, at: number, v: number): void {
  view.setUint32(at, Math.floor(v / 0x1_0000_0000))
  view.setUint32(at + 4, v >>> 0)
}

/** Builds an entry with its chained hash. */
export function makeEntry(prevHash: Uint8Array, index: number, term: number, type: EntryType, data: Uint8Array): Entry {
  return { index, term, type, data, hash: computeEntryHash(prevHash, index, term, type, data) }
}

/** Per-entry byte cost used for message and inflight limits: payload plus fixed fields. */
export const ENTRY_OVERHEAD_BYTES = 8 + 8 + 1 + HASH_BYTES

export function entryBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES
}
