import { decodeConfChange, type ConfChange, type Entry } from './raft/index.js'

/**
 * What a board entry holds. The Raft core's own entries are the leader's empty no-op and
 * configuration changes; every other entry starts with a version byte and a kind byte.
 */
export type BoardEntry =
  | { kind: 'noop' }
  | { kind: 'config', change: ConfChange }
  | { kind: 'raw', payload: Uint8Array }
  | { kind: 'unknown', code: number, reason: string }

export const BOARD_ENTRY_VERSION = 1

/** Kind codes of board entries (second byte). */
export const ENTRY_KIND = {
  /** An opaque entry proposed through the lab API. */
  raw: 0x01
} as const

/** Encodes an opaque lab entry. */
export function encodeRawEntry (payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + payload.length)
  out[0] = BOARD_ENTRY_VERSION
  out[1] = ENTRY_KIND.raw
  out.set(payload, 2)
  return out
}

/**
 * Reads a committed entry. A committed entry that cannot be read is reported as `unknown`, never
 * thrown: the log is what it is, and every node must apply it the same way.
 */
export function decodeBoardEntry (entry: Entry): BoardEntry {
  if (entry.type === 'confChange') {
    try {
      return { kind: 'config', change: decodeConfChange(entry.data) }
    } catch (err) {
      return { kind: 'unknown', code: -1, reason: (err as Error).message }
    }
  }
  if (entry.data.length === 0) return { kind: 'noop' }
  if (entry.data[0] !== BOARD_ENTRY_VERSION) return { kind: 'unknown', code: -1, reason: `unsupported entry version ${entry.data[0]}` }
  const code = entry.data[1] ?? -1
  switch (code) {
    case ENTRY_KIND.raw: return { kind: 'raw', payload: entry.data.subarray(2) }
    default: return { kind: 'unknown', code, reason: `unknown entry kind ${code}` }
  }
}

/** The payload a client sees for an entry: the raw payload for lab entries, the full data otherwise. */
export function entryPayload (entry: Entry, decoded: BoardEntry): Uint8Array {
  return decoded.kind === 'raw' ? decoded.payload : entry.data
}
