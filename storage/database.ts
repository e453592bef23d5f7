import { Level } from 'level'

/** Keys and values are raw bytes; each part of the schema owns a one-byte key prefix. */
export type Database = Level<Uint8Array, Uint8Array>

/** Version of the on-disk layout; a node refuses a database written by a newer layout. */
export const SCHEMA_VERSION = 1

/** Key prefixes of the schema, one byte each, so that no part can read another's keys. */
export const PREFIX = {
  meta: 0x00,
  raftHardState: 0x01,
  raftEntry: 0x02,
  raftSnapshot: 0x03,
  boardApplied: 0x04,
  /** The pool board (storage/pool-store.ts): applied index, chain height, genesis. */
  poolMeta: 0x10,
  /** Each (sub-)pool's current state and status, keyed by its pool reference. */
  poolState: 0x11,
  /** Outpoints spent by accepted partition statements, keyed by outpoint. */
  poolSpent: 0x12,
  /** Partition statements, keyed by statement id. */
  poolStatement: 0x13,
  /** Equivocation evidence, keyed by evidence id. */
  poolEvidence: 0x14,
  /** Kick-out Withdraws confirmed on the simulated chain, keyed by txid. */
  poolKickout: 0x15,
  /** The result of each applied entry (the most recent ones), keyed by board index. */
  poolResult: 0x16,
  /**
   * What this node's member signed (daemon/pool/signed-record.ts): one state N+1 per state N of a pool,
   * one partition statement per Withdraw output of its own. Never replicated: it is the member's
   * own promise not to sign twice, kept across restarts.
   */
  poolSigned: 0x20
} as const

const SCHEMA_KEY = Uint8Array.of(PREFIX.meta, ...new TextEncoder().encode('schema'))
/**
 * Present from the creation of the database (poolboard init) until the board first records its
 * state (storage/raft-store.ts, bootstrap): an empty board store without it was wiped, and its node
 * may have voted in terms it no longer remembers.
 */
export const BOARD_UNBORN_KEY = Uint8Array.of(PREFIX.meta, ...new TextEncoder().encode('board-unborn'))

/** Thrown when another process holds the database (LevelDB's own lock, released even on kill -9). */
export class DatabaseLockedError extends Error {
  constructor(path: string) {
    super(`the database ${path} is in use by another process`)
    this.name = 'DatabaseLockedError'
  }
}

/**
 * Opens (and with `create`, creates) the node's LevelDB and checks its schema version.
 * LevelDB's lock doubles as the data directory's lock: it is an OS lock, so a crashed node never
 * leaves a stale one behind.
 */
export async function openDatabase(path: string, options: { create: boolean }): Promise<Database> {
  const db: Database = new Level<Uint8Array, Uint8Array>(path, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    createIfMissing: options.create,
    errorIfExists: options.create
  })
  try {
    await db.open()
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    if (cause?.code === 'LEVEL_LOCKED') throw new DatabaseLockedError(path)
    throw new Error(`cannot open the database ${path}: ${cause?.message ?? (err as Error).message}`)
  }
  try {
    const stored = await db.get(SCHEMA_KEY)
    if (stored === undefined) {
      if (!options.create)
        throw new Error(`the database ${path} has no schema version: it was not made by poolboard init`)
      await db.batch(
        [
          { type: 'put', key: SCHEMA_KEY, value: encodeU32(SCHEMA_VERSION) },
          { type: 'put', key: BOARD_UNBORN_KEY, value: new Uint8Array(0) }
        ],
        { sync: true }
      )
    } else {
      const version = decodeU32(stored)
      if (version !== SCHEMA_VERSION) {
        throw new Error(
          `the database ${path} has schema version ${version}; this poolboard reads version ${SCHEMA_VERSION}`
        )
      }
    }
  } catch (err) {
    await db.close()
    throw err
  }
  return db
}

function encodeU32(n: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n)
  return out
}

function decodeU32(bytes: Uint8Array): number {
  if (bytes.length !== 4) throw new Error(`schema version: expected 4 bytes, got ${bytes.length}`)
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0)
}
