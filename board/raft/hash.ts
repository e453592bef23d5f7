// The log's hash chain.
//
// hash(entry) = sha256( "poolboard/raft/entry/v1" || prevHash (32 bytes) || index (u64 BE)
//                       || term (u64 BE) || type (u8: 0 normal, 1 confChange)
//                       || data length (u32 BE) || data )
//
// prevHash is the hash of the entry at index - 1, or the snapshot's hash when index - 1 is the
// snapshot index; the (empty) log before index 1 has the all-zero hash. Because each hash covers
// the previous one, two logs with the same hash at index i are identical up to i.

import { createHash, type Hash } from 'node:crypto'
import type { Entry, EntryType } from './types.js'

export const HASH_BYTES = 32
export const ENTRY_HASH_TAG = 'poolboard/raft/entry/v1'
/** Hash of the empty log (the "entry" at index 0). */
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES)

const TAG_BYTES = new TextEncoder().encode(ENTRY_HASH_TAG)
// A hash already fed with the tag; copied for every entry instead of hashing the tag again.
const TAGGED: Hash = createHash('sha256').update(TAG_BYTES)

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
  const header = new Uint8Array(HASH_BYTES + 8 + 8 + 1 + 4)
  header.set(prevHash, 0)
  const view = new DataView(header.buffer)
  setU64(view, HASH_BYTES, index)
  setU64(view, HASH_BYTES + 8, term)
  view.setUint8(HASH_BYTES + 16, entryTypeCode(type))
  view.setUint32(HASH_BYTES + 17, data.length)
  const h = TAGGED.copy()
  h.update(header)
  h.update(data)
  const digest = h.digest()
  // Plain Uint8Array (not a Buffer) so entries stay plain data.
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
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
