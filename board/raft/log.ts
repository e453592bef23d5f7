// The in-memory Raft log: the last snapshot's metadata (and data), the entries after it, the commit
// and apply cursors, and the configuration each configuration-change entry produces.
//
// The application compacts every K entries, so the whole log after the snapshot stays in memory
// and every read here is synchronous. This class enforces only local invariants; the rules about
// which leader may write what live in raft.ts.

import assert from 'node:assert/strict'
import { applyConfEntry, decodeConfEntry } from './confchange.js'
import { equalBytes } from '../../protocol/bytes.js'
import { entryBytes } from './hash.js'
import type { Configuration, Entry, Snapshot, SnapshotMeta } from './types.js'

interface ConfPoint {
  readonly index: number
  readonly config: Configuration
}

export class RaftLog {
  /** The last snapshot: the log prefix up to snapshot.index is replaced by it. */
  private snap: SnapshotMeta
  private snapData: Uint8Array
  /** entries[k].index === snap.index + 1 + k. */
  private entries: Entry[]
  /** Configurations produced by confChange entries after the snapshot, in log order. */
  private confs: ConfPoint[] = []
  /** Highest index known committed. */
  committed: number
  /** Highest index the application acknowledged as applied (advance()). */
  applied: number
  /** Highest index handed out for applying (ready()); applied <= applying <= min(committed, applicable). */
  applying: number
  /**
   * Highest index that may be applied. Plain Raft applies what is committed (Infinity); with
   * lying voters, only what a quorum holds committed (the commit certificate's second count).
   */
  applicable = Number.POSITIVE_INFINITY
  /** First index not yet handed out for persisting. */
  unstableFrom: number
  /** The log is durable up to here (handed out in a Ready that was advanced); <= lastIndex. */
  persistedIndex: number
  /** A snapshot received from a leader, not yet handed out for persisting. */
  pendingSnapshot: Snapshot | null = null

  constructor(snapshot: Snapshot, entries: readonly Entry[], committed: number, applied: number) {
    this.snap = snapshot.meta
    this.snapData = snapshot.data
    this.entries = []
    this.committed = committed
    this.applied = applied
    this.applying = applied
    this.appendUnchecked(entries)
    this.unstableFrom = this.lastIndex() + 1 // restored entries are already durable
    this.persistedIndex = this.lastIndex()
  }

  // ---- reads -----------------------------------------------------------------------------

  snapshotMeta(): SnapshotMeta {
    return this.snap
  }

  snapshot(): Snapshot {
    return { meta: this.snap, data: this.snapData }
  }

  firstIndex(): number {
    return this.snap.index + 1
  }

  lastIndex(): number {
    return this.snap.index + this.entries.length
  }

  lastTerm(): number {
    return this.entries.length === 0 ? this.snap.term : this.entries[this.entries.length - 1]!.term
  }

  lastHash(): Uint8Array {
    return this.entries.length === 0 ? this.snap.hash : this.entries[this.entries.length - 1]!.hash
  }

  /** Term at index, or null if the index is compacted away or beyond the log. */
  term(index: number): number | null {
    if (index === this.snap.index) return this.snap.term
    const e = this.entries[index - this.snap.index - 1]
    return e === undefined ? null : e.term
  }

  /** Hash at index, or null if unknown (compacted or beyond the log). */
  hash(index: number): Uint8Array | null {
    if (index === this.snap.index) return this.snap.hash
    const e = this.entries[index - this.snap.index - 1]
    return e === undefined ? null : e.hash
  }

  entry(index: number): Entry | undefined {
    return this.entries[index - this.snap.index - 1]
  }

  /** Entries in [lo, hi). Both bounds must lie within the log after the snapshot. */
  slice(lo: number, hi: number): Entry[] {
    assert(lo >= this.firstIndex() && hi <= this.lastIndex() + 1 && lo <= hi, `slice [${lo}, ${hi}) out of range`)
    return this.entries.slice(lo - this.snap.index - 1, hi - this.snap.index - 1)
  }

  /**
   * Entries in [lo, hi] (within the log after the snapshot, or none if lo > hi) whose total
   * entryBytes stay within maxBytes, at least one if any exist; and that total.
   */
  sliceBytes(lo: number, hi: number, maxBytes: number): { entries: Entry[]; bytes: number } {
    const entries: Entry[] = []
    let bytes = 0
    for (let i = lo; i <= hi; i++) {
      const e = this.entries[i - this.snap.index - 1]!
      const size = entryBytes(e)
      if (entries.length > 0 && bytes + size > maxBytes) break
      bytes += size
      entries.push(e)
    }
    return { entries, bytes }
  }

  /** Raft's "at least as up-to-date" (§5.4.1): higher last term wins, then the longer log. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm()
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex())
  }

  /**
   * The largest index <= index whose term is <= term, with that term. Used on both sides of the
   * fast backtracking after a rejected append: no index above it can match an entry of `term`.
   * Returns term 0 when the search reaches the snapshot and its term is still too high.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex())
    for (; i > this.snap.index; i--) {
      const t = this.entries[i - this.snap.index - 1]!.term
      if (t <= term) return { index: i, term: t }
    }
    if (i < this.snap.index) return { index: i, term: 0 }
    return this.snap.term <= term
      ? { index: this.snap.index, term: this.snap.term }
      : { index: this.snap.index, term: 0 }
  }

  configuration(): Configuration {
    return this.confs.length === 0 ? this.snap.configuration : this.confs[this.confs.length - 1]!.config
  }

  /** The configuration in effect at index (the latest change at or before it). */
  configurationAt(index: number): Configuration {
    for (let k = this.confs.length - 1; k >= 0; k--) if (this.confs[k]!.index <= index) return this.confs[k]!.config
    return this.snap.configuration
  }

  /** Index of the latest configuration-change entry after the snapshot, or 0 if none. */
  lastConfIndex(): number {
    return this.confs.length === 0 ? 0 : this.confs[this.confs.length - 1]!.index
  }

  /** Payload bytes of entries in (lo, hi] whose term is `term`. */
  payloadBytesOfTerm(lo: number, hi: number, term: number): number {
    let n = 0
    for (let i = Math.max(lo + 1, this.firstIndex()); i <= hi; i++) {
      const e = this.entries[i - this.snap.index - 1]!
      if (e.term === term) n += e.data.length
    }
    return n
  }

  // ---- writes ----------------------------------------------------------------------------

  /** Appends entries that continue the log exactly (index and hash chain). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return
    assert.equal(entries[0]!.index, this.lastIndex() + 1, 'append must continue the log')
    this.appendUnchecked(entries)
  }

  private appendUnchecked(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.type === 'confChange') {
        this.confs.push({ index: e.index, config: applyConfEntry(this.configuration(), decodeConfEntry(e.data)) })
      }
      this.entries.push(e)
    }
  }

  /** Drops every entry with index >= from. Never touches committed entries. */
  truncateFrom(from: number): void {
    assert(from > this.committed, `truncating committed entries (from ${from}, committed ${this.committed})`)
    assert(from > this.snap.index, 'truncating into the snapshot')
    if (from > this.lastIndex()) return
    this.entries.length = from - this.snap.index - 1
    while (this.confs.length > 0 && this.confs[this.confs.length - 1]!.index >= from) this.confs.pop()
    if (this.unstableFrom > from) this.unstableFrom = from
    if (this.persistedIndex >= from) this.persistedIndex = from - 1
  }

  commitTo(index: number): void {
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`)
    if (index > this.committed) this.committed = index
  }

  /** Replaces the whole log by a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.committed, 'restoring a snapshot that is not ahead of the commit index')
    this.snap = snapshot.meta
    this.snapData = snapshot.data
    this.entries = []
    this.confs = []
    this.committed = snapshot.meta.index
    this.applying = Math.max(this.applying, snapshot.meta.index)
    this.unstableFrom = snapshot.meta.index + 1
    this.persistedIndex = Math.min(this.persistedIndex, snapshot.meta.index)
    this.pendingSnapshot = snapshot
  }

  /**
   * Records the application's snapshot at `index` (<= applied) and drops the log prefix up to it.
   * Returns the new snapshot metadata, or null if the log is already compacted that far.
   */
  compact(index: number, data: Uint8Array): SnapshotMeta | null {
    if (index <= this.snap.index) return null
    assert(index <= this.applied, `compact(${index}) beyond applied index ${this.applied}`)
    assert(index < this.unstableFrom, 'compacting entries not yet persisted')
    const e = this.entry(index)!
    const meta: SnapshotMeta = { index, term: e.term, hash: e.hash, configuration: this.configurationAt(index) }
    this.entries = this.entries.slice(index - this.snap.index)
    this.confs = this.confs.filter((c) => c.index > index)
    this.snap = meta
    this.snapData = data
    return meta
  }

  /** True if the entry at index has this term (and, when compared, this hash). */
  matches(index: number, term: number, hash: Uint8Array | null): boolean {
    const t = this.term(index)
    if (t === null || t !== term) return false
    return hash === null || equalBytes(this.hash(index)!, hash)
  }

  // ---- Ready support -------------------------------------------------------------------------

  /** A Ready whose last entry (or snapshot) was (index, hash) is durable: so is the log up to it, if still there. */
  markPersisted(index: number, hash: Uint8Array): void {
    if (index > this.persistedIndex && this.matches(index, this.term(index) ?? -1, hash)) this.persistedIndex = index
  }

  hasUnstableEntries(): boolean {
    return this.unstableFrom <= this.lastIndex()
  }

  takeUnstableEntries(): Entry[] {
    if (!this.hasUnstableEntries()) return []
    const out = this.slice(this.unstableFrom, this.lastIndex() + 1)
    this.unstableFrom = this.lastIndex() + 1
    return out
  }

  hasCommittedToApply(): boolean {
    return this.pendingSnapshot === null && Math.min(this.committed, this.applicable) > this.applying
  }

  takeCommittedToApply(maxBytes: number): Entry[] {
    if (!this.hasCommittedToApply()) return []
    const lo = Math.max(this.applying + 1, this.firstIndex())
    const out = this.sliceBytes(lo, Math.min(this.committed, this.applicable), maxBytes).entries
    if (out.length > 0) this.applying = out[out.length - 1]!.index
    return out
  }
}
