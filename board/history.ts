import { type Reader, Writer, decodeAll } from '../protocol/codec.js'
import { equalBytes, toHex } from '../protocol/bytes.js'
import { computeEntryHash, type Entry, type EntryType, type SnapshotMeta } from './raft/index.js'

/**
 * The data of a board snapshot: the committed entries a lagging node lacks, from `firstIndex`
 * up to the snapshot's last index. The board's log is its history, so instead of a state image a
 * snapshot carries the missing part of that history.
 *
 * Hashes are not sent: the receiver recomputes the chain from its own entry at firstIndex - 1, and
 * the result must equal the hash in the snapshot metadata. One comparison thus checks every entry
 * and that the history continues the receiver's own log.
 *
 * Encoding: version u8, firstIndex varint, count varint, then per entry: term varint,
 * type u8 (0 normal, 1 confChange), data (varint length + bytes).
 */
export interface SnapshotHistory {
  firstIndex: number
  entries: Array<{ term: number; type: EntryType; data: Uint8Array }>
}

const HISTORY_VERSION = 1
/** Entries in one snapshot at most. */
export const MAX_HISTORY_ENTRIES = 10_000_000
const MAX_ENTRY_DATA_BYTES = 64 * 1024 * 1024

export function encodeHistory(entries: readonly Entry[], firstIndex: number): Uint8Array {
  let size = 16
  for (const e of entries) size += e.data.length + 16
  const w = new Writer(size)
    .u8(HISTORY_VERSION)
    .varint(firstIndex)
    .count(entries.length, MAX_HISTORY_ENTRIES, 'entries')
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if (e.index !== firstIndex + i) throw new Error(`history: entry ${e.index} where ${firstIndex + i} was expected`)
    w.varint(e.term)
      .u8(e.type === 'normal' ? 0 : 1)
      .bytes(e.data, MAX_ENTRY_DATA_BYTES, 'data')
  }
  return w.finish()
}

export function decodeHistory(bytes: Uint8Array): SnapshotHistory {
  return decodeAll(bytes, 'snapshot history', (r: Reader) => {
    r.version([HISTORY_VERSION])
    const firstIndex = r.varint('firstIndex')
    if (firstIndex < 1) r.fail('firstIndex', 'must be at least 1')
    const count = r.count('entries', MAX_HISTORY_ENTRIES, 3)
    const entries: SnapshotHistory['entries'] = new Array(count)
    for (let i = 0; i < count; i++) {
      const term = r.varint('term')
      const code = r.u8('type')
      if (code > 1) r.fail('type', `unknown entry type ${code}`)
      entries[i] = { term, type: code === 0 ? 'normal' : 'confChange', data: r.bytes('data', MAX_ENTRY_DATA_BYTES) }
    }
    return { firstIndex, entries }
  })
}

/**
 * Rebuilds the entries of a history on top of `prevHash` (the receiver's hash at firstIndex - 1)
 * and checks they end exactly at the snapshot's index and hash. Returns a reason when they do not.
 */
export function verifyHistory(
  history: SnapshotHistory,
  prevHash: Uint8Array,
  meta: SnapshotMeta
): { entries: Entry[] } | { problem: string } {
  const last = history.firstIndex + history.entries.length - 1
  if (last !== meta.index) return { problem: `the history ends at ${last} but the snapshot is at ${meta.index}` }
  const entries: Entry[] = new Array(history.entries.length)
  let hash = prevHash
  for (let i = 0; i < history.entries.length; i++) {
    const e = history.entries[i]
    const index = history.firstIndex + i
    if (i > 0 && e.term < history.entries[i - 1].term) return { problem: `the term goes down at ${index}` }
    hash = computeEntryHash(hash, index, e.term, e.type, e.data)
    entries[i] = { index, term: e.term, type: e.type, data: e.data, hash }
  }
  if (entries.length > 0 && entries[entries.length - 1].term !== meta.term) {
    return { problem: `the last entry has term ${entries[entries.length - 1].term} but the snapshot says ${meta.term}` }
  }
  if (!equalBytes(hash, meta.hash)) {
    return {
      problem: `the history hashes to ${toHex(hash).slice(0, 16)}… but the snapshot says ${toHex(meta.hash).slice(0, 16)}…: it does not continue this node's log, or was altered`
    }
  }
  return { entries }
}
