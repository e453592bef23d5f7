import { DecodeError, Reader, Writer } from '../protocol/codec.js'
import { equalBytes } from '../protocol/bytes.js'
import { sha256 } from '../protocol/hash.js'
// The one value storage/ takes from board/: the Raft configuration's codec (the wire's too).
import {
  MAX_NODE_ID_BYTES,
  readConfiguration,
  writeConfiguration,
  type ConfigurationLimits
} from '../board/configuration.js'
import type { Entry, EntryType, HardState, PersistedState, Ready, SnapshotMeta } from '../board/raft/index.js'
import { MAX_MEMBERS } from '../protocol/limits.js'
import { BOARD_UNBORN_KEY, PREFIX, type Database } from './database.js'

/**
 * The board's Raft log on LevelDB.
 *
 * Keys (one byte prefix each, see database.ts):
 *   raftHardState                 -> term, vote, commit
 *   raftEntry + u64 BE index      -> term, type, hash, data   (big-endian so keys sort by index)
 *   raftSnapshot                  -> snapshot metadata: index, term, hash, configuration
 *   boardApplied                  -> index of the last entry the board state machine applied
 *
 * Committed entries are never deleted: the log is the bulletin board's history, so a snapshot is
 * only metadata (where the Raft core's in-memory log starts) and a lagging node is sent the
 * committed entries it lacks. Uncommitted entries are overwritten when a new leader truncates them.
 *
 * Every Ready is persisted as ONE atomic batch (`persist`), together with the board state that
 * applying its committed entries produced, which is the durability contract of
 * board/raft/types.ts. The batch is synced whenever it holds entries, a snapshot, a term or a vote.
 * Batches that only record a commit index, derived state or snapshot metadata are not synced:
 * LevelDB replays its log in order, so a crash loses at most a suffix of them, and the next synced
 * batch makes them durable. LevelDB may lose any of the records at the end of its log that were not
 * synced (it drops a torn block and replays the records after it), even one followed by a synced
 * record whose sync had not completed. So the batch after an unsynced one is synced and repeats the
 * unsynced one's operations first: whichever of the two survive, the store holds the state before
 * the first, after the first, or after both.
 */
export class RaftStore {
  private lastIndex: number
  /** The last write issued: the next one starts after it, so batches reach LevelDB in order. */
  private tail: Promise<void> = Promise.resolve()
  /** Term and vote last written, to tell whether a hard state change needs a sync. */
  protected durableTerm = 0
  protected durableVote: string | null = null
  /** The operations of the last batch issued if it was not synced: the next one repeats them, synced. */
  protected unsyncedOps: BatchOp[] | null = null
  /** The first write that failed: every later one fails with it. */
  private failure: Error | null = null

  protected constructor(
    private readonly db: Database,
    lastIndex: number
  ) {
    this.lastIndex = lastIndex
  }

  static async open(db: Database): Promise<RaftStore> {
    return new this(db, await lastStoredIndex(db))
  }

  /** The last index in the stored log (0 when empty). */
  get lastStoredIndex(): number {
    return this.lastIndex
  }

  /**
   * The state to restart the Raft core from, or null for a node that never ran the board.
   * Throws StoreCorruptError when the store cannot be a log this node wrote.
   */
  async load(): Promise<PersistedState | null> {
    const hardBytes = await this.db.get(HARD_STATE_KEY)
    const snapBytes = await this.db.get(SNAPSHOT_KEY)
    if (hardBytes === undefined && snapBytes === undefined) {
      if (this.lastIndex !== 0)
        throw new StoreCorruptError(`the log holds entries up to ${this.lastIndex} but no hard state or snapshot`)
      if ((await this.db.get(BOARD_UNBORN_KEY)) === undefined) {
        throw new StoreCorruptError(
          'the board state is gone but the database was not just created (wiped or lost): this node may have voted in terms it no longer remembers, so it must not start as new; re-create it (poolboard init, a new identity) and add it again as a member'
        )
      }
      return null
    }
    if (snapBytes === undefined)
      throw new StoreCorruptError('the hard state is present but the snapshot metadata is missing')
    const hardState =
      hardBytes === undefined
        ? { term: 0, vote: null, commit: 0 }
        : decodeStored(hardBytes, 'hard state', (r) => readHardState(r, hardBytes))
    this.durableTerm = hardState.term
    this.durableVote = hardState.vote
    const meta = decodeStored(snapBytes, 'snapshot metadata', readSnapshotMeta)
    if (meta.index > 0) {
      const atSnapshot = await this.entry(meta.index)
      if (atSnapshot === undefined)
        throw new StoreCorruptError(`the snapshot ends at ${meta.index} but that entry is missing from the log`)
      if (!equalBytes(atSnapshot.hash, meta.hash))
        throw new StoreCorruptError(`the entry at the snapshot index ${meta.index} does not have the snapshot's hash`)
    }
    const entries = await this.readEntries(meta.index + 1, Number.MAX_SAFE_INTEGER)
    if (hardState.commit > (entries.at(-1)?.index ?? meta.index)) {
      throw new StoreCorruptError(
        `the node acknowledged entries up to ${hardState.commit} but the log ends at ${entries.at(-1)?.index ?? meta.index}: writes were lost`
      )
    }
    const appliedBytes = await this.db.get(APPLIED_KEY)
    const applied =
      appliedBytes === undefined ? meta.index : decodeStored(appliedBytes, 'applied index', (r) => r.varint('applied'))
    return { hardState, snapshot: { meta, data: new Uint8Array(0) }, entries, applied: Math.max(applied, meta.index) }
  }

  /** Records the initial state of a node that has never run the board (founding or joining). */
  async bootstrap(state: PersistedState): Promise<void> {
    if (this.lastIndex !== 0 || (await this.db.get(SNAPSHOT_KEY)) !== undefined)
      throw new Error('the board store is already initialized')
    await this.db.batch(
      [
        { type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshotMeta(state.snapshot.meta) },
        { type: 'put', key: HARD_STATE_KEY, value: encodeHardState(state.hardState) },
        ...state.entries.map(putEntry),
        { type: 'del', key: BOARD_UNBORN_KEY }
      ],
      { sync: true }
    )
    this.unsyncedOps = null
    this.durableTerm = state.hardState.term
    this.durableVote = state.hardState.vote
    this.lastIndex = state.entries.at(-1)?.index ?? state.snapshot.meta.index
  }

  /**
   * Persists a Ready in one atomic batch: a received snapshot (its history entries and metadata),
   * new entries (replacing any stored suffix), and the hard state. The batch is synced unless all
   * it records is a higher commit index: a node that forgets how far the log is committed learns
   * it again from the leader, and nothing committed depends on this node remembering it (etcd's
   * rule too). Entries, a snapshot, a new term or a vote are always synced.
   * `snapshotEntries` are the committed entries the snapshot carries, already verified;
   * `appliedOps` record the board state after applying this Ready's committed entries.
   */
  async persist(
    ready: Ready,
    snapshotEntries: readonly Entry[] = [],
    appliedOps: readonly BatchOp[] = []
  ): Promise<void> {
    const ops: BatchOp[] = []
    let last = this.lastIndex
    if (ready.snapshot !== null) {
      const meta = ready.snapshot.meta
      for (const e of snapshotEntries) ops.push(putEntry(e))
      // The core discarded its whole log for the snapshot: stored entries after it are not ours any more.
      for (let i = meta.index + 1; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) })
      ops.push({ type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshotMeta(meta) })
      last = meta.index
    }
    if (ready.entries.length > 0) {
      const first = ready.entries[0].index
      const newLast = ready.entries[ready.entries.length - 1].index
      for (const e of ready.entries) ops.push(putEntry(e))
      for (let i = newLast + 1; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) })
      if (first > last + 1) throw new Error(`persist: entries start at ${first} but the stored log ends at ${last}`)
      last = newLast
    }
    const hs = ready.hardState
    if (hs !== null) ops.push({ type: 'put', key: HARD_STATE_KEY, value: encodeHardState(hs) })
    ops.push(...appliedOps)
    if (ops.length === 0) return
    const sync = this.mustSync(ready)
    // Bookkeeping follows the writes as issued: they reach LevelDB in this order (each waits for
    // the one before), and a failed write stops the node, so what is issued is what will be stored.
    this.lastIndex = last
    if (hs !== null) {
      this.durableTerm = hs.term
      this.durableVote = hs.vote
    }
    await this.enqueue(ops, sync)
  }

  /** Writes `ops` as one batch once every batch issued before has been written. */
  protected async enqueue(ops: BatchOp[], sync: boolean): Promise<void> {
    if (this.unsyncedOps !== null) {
      ops = [...this.unsyncedOps, ...ops]
      sync = true
    }
    this.unsyncedOps = sync ? null : ops
    // After a failed write nothing later is issued: a later batch that reached the disk while the
    // failed one did not could leave a state no sequence of writes produced (a snapshot above the
    // commit index, say). The node stops; a restart starts from what is on disk.
    const write = this.tail.then(async () => {
      if (this.failure !== null) throw this.failure
      try {
        await this.db.batch(ops, { sync })
      } catch (err) {
        this.failure = err as Error
        throw err
      }
    })
    this.tail = write.catch(() => {})
    await write
  }

  /** Waits until every write issued so far is done. */
  async flush(): Promise<void> {
    await this.tail
  }

  /** Whether persisting `ready` must be synced: it holds entries, a snapshot, a new term or a vote. */
  mustSync(ready: Ready): boolean {
    return (
      ready.entries.length > 0 ||
      ready.snapshot !== null ||
      ready.syncCommit === true ||
      (ready.hardState !== null && this.changesTermOrVote(ready.hardState))
    )
  }

  /** Whether writing `hs` changes the durable term or vote (and so must be synced before anything depends on it). */
  changesTermOrVote(hs: HardState): boolean {
    return hs.term !== this.durableTerm || hs.vote !== this.durableVote
  }

  /**
   * Records a snapshot taken locally (metadata only: the entries stay as history). It is written
   * after every batch issued before it: the snapshot covers entries whose commit index an unsynced
   * batch recorded, and a crash must never keep the snapshot without that batch.
   */
  async saveSnapshotMeta(meta: SnapshotMeta): Promise<void> {
    await this.enqueue([{ type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshotMeta(meta) }], false)
  }

  /** The operations that record `applied`, for the board state machine to put in its own batch. */
  appliedOp(applied: number): BatchOp {
    return { type: 'put', key: APPLIED_KEY, value: new Writer(9).varint(applied).finish() }
  }

  async entry(index: number): Promise<Entry | undefined> {
    const bytes = await this.db.get(entryKey(index))
    return bytes === undefined ? undefined : decodeStored(bytes, `entry ${index}`, (r) => readEntry(r, index))
  }

  /** Stored entries with from <= index <= to, in order, stopping after `maxBytes` of data (at least one). */
  async readEntries(from: number, to: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<Entry[]> {
    const out: Entry[] = []
    if (to < from) return out
    let bytes = 0
    let expected = from
    for await (const [key, value] of this.db.iterator({
      gte: entryKey(from),
      lte: entryKey(Math.min(to, MAX_INDEX))
    })) {
      const index = indexOfKey(key)
      if (index !== expected)
        throw new StoreCorruptError(`the log has a gap: expected entry ${expected}, found ${index}`)
      const e = decodeStored(value, `entry ${index}`, (r) => readEntry(r, index))
      out.push(e)
      bytes += e.data.length
      expected++
      if (bytes >= maxBytes) break
    }
    return out
  }
}

export type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }

/** The stored log or state is not one this node could have written; the node must not start. */
export class StoreCorruptError extends Error {
  constructor(message: string) {
    super(`the board store is damaged: ${message}`)
    this.name = 'StoreCorruptError'
  }
}

const STORE_VERSION = 1
const MAX_INDEX = Number.MAX_SAFE_INTEGER
const MAX_ENTRY_BYTES = 64 * 1024 * 1024
const CONFIGURATION_LIMITS: ConfigurationLimits = { maxNodes: MAX_MEMBERS, maxNodeIdBytes: MAX_NODE_ID_BYTES }
const HARD_STATE_KEY = Uint8Array.of(PREFIX.raftHardState)
const SNAPSHOT_KEY = Uint8Array.of(PREFIX.raftSnapshot)
const APPLIED_KEY = Uint8Array.of(PREFIX.boardApplied)

export function entryKey(index: number): Uint8Array {
  // Byte by byte (u64 big-endian; indexes are safe integers): a DataView over this small buffer
  // would move it off the V8 heap, which costs more than the key.
  const key = new Uint8Array(9)
  key[0] = PREFIX.raftEntry
  let hi = Math.floor(index / 0x1_0000_0000)
  let lo = index >>> 0
  for (let i = 8; i >= 5; i--) {
    key[i] = lo & 0xff
    lo >>>= 8
  }
  for (let i = 4; i >= 1; i--) {
    key[i] = hi & 0xff
    hi >>>= 8
  }
  return key
}

function indexOfKey(key: Uint8Array): number {
  let hi = 0
  let lo = 0
  for (let i = 1; i <= 4; i++) hi = hi * 256 + key[i]!
  for (let i = 5; i <= 8; i++) lo = lo * 256 + key[i]!
  return hi * 0x1_0000_0000 + lo
}

async function lastStoredIndex(db: Database): Promise<number> {
  for await (const key of db.keys({ gte: entryKey(0), lte: entryKey(MAX_INDEX), reverse: true, limit: 1 }))
    return indexOfKey(key)
  return 0
}

/** The batch operation that stores `e` at its index (replacing whatever is there). */
export function putEntry(e: Entry): BatchOp {
  const w = new Writer(e.data.length + 48)
  w.u8(STORE_VERSION)
    .varint(e.term)
    .u8(e.type === 'normal' ? 0 : 1)
    .bytes32(e.hash)
    .bytes(e.data, MAX_ENTRY_BYTES)
  return { type: 'put', key: entryKey(e.index), value: w.finish() }
}

function readEntry(r: Reader, index: number): Entry {
  r.version([STORE_VERSION])
  const term = r.varint('term')
  const code = r.u8('type')
  if (code > 1) r.fail('type', `unknown entry type ${code}`)
  const type: EntryType = code === 0 ? 'normal' : 'confChange'
  const hash = r.bytes32('hash')
  const data = r.bytes('data', MAX_ENTRY_BYTES)
  return { index, term, type, hash, data }
}

/**
 * The hard state ends with a checksum of what precedes it (version 2): a flipped bit in a term or a
 * vote would still decode, and a node that believes an older term or no vote can vote twice.
 */
const HARD_STATE_VERSION = 2
const HARD_STATE_CHECKSUM_BYTES = 8

function encodeHardState(hs: HardState): Uint8Array {
  const w = new Writer(64)
    .u8(HARD_STATE_VERSION)
    .varint(hs.term)
    .varint(hs.commit)
    .u8(hs.vote === null ? 0 : 1)
  if (hs.vote !== null) w.string(hs.vote, MAX_NODE_ID_BYTES, 'vote')
  const body = w.finish()
  const out = new Uint8Array(body.length + HARD_STATE_CHECKSUM_BYTES)
  out.set(body, 0)
  out.set(sha256(body).subarray(0, HARD_STATE_CHECKSUM_BYTES), body.length)
  return out
}

function readHardState(r: Reader, bytes: Uint8Array): HardState {
  const version = r.version([STORE_VERSION, HARD_STATE_VERSION])
  const term = r.varint('term')
  const commit = r.varint('commit')
  const hasVote = r.u8('has vote')
  if (hasVote > 1) r.fail('has vote', `expected 0 or 1, got ${hasVote}`)
  const vote = hasVote === 1 ? r.string('vote', MAX_NODE_ID_BYTES) : null
  if (version === HARD_STATE_VERSION) {
    const body = bytes.subarray(0, r.offset)
    const checksum = r.fixed('checksum', HARD_STATE_CHECKSUM_BYTES)
    if (!equalBytes(checksum, sha256(body).subarray(0, HARD_STATE_CHECKSUM_BYTES)))
      r.fail('checksum', 'the hard state does not match its checksum (bit rot?)')
  }
  return { term, vote, commit }
}

function encodeSnapshotMeta(meta: SnapshotMeta): Uint8Array {
  const w = new Writer(256).u8(STORE_VERSION).varint(meta.index).varint(meta.term).bytes32(meta.hash)
  writeConfiguration(w, meta.configuration, CONFIGURATION_LIMITS, 'configuration')
  return w.finish()
}

function readSnapshotMeta(r: Reader): SnapshotMeta {
  r.version([STORE_VERSION])
  const index = r.varint('index')
  const term = r.varint('term')
  const hash = r.bytes32('hash')
  return { index, term, hash, configuration: readConfiguration(r, CONFIGURATION_LIMITS) }
}

function decodeStored<T>(bytes: Uint8Array, what: string, read: (r: Reader) => T): T {
  try {
    const r = new Reader(bytes, what)
    const value = read(r)
    r.end()
    return value
  } catch (err) {
    if (err instanceof DecodeError) throw new StoreCorruptError(err.message)
    throw err
  }
}
