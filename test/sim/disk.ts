// A simulated disk holding one node's Raft state. Writes land in a volatile buffer; sync() makes
// them durable; a crash throws the buffer away. Each Ready is written as one atomic batch.

import type { Entry, HardState, PersistedState, Snapshot, SnapshotMeta } from '../../board/raft/index.js'

export interface Batch {
  readonly hardState: HardState | null
  readonly entries: readonly Entry[]
  readonly snapshot: Snapshot | null
}

export interface DurableState {
  hardState: HardState
  snapshot: Snapshot
  /** Entries after the snapshot, contiguous. */
  entries: Entry[]
}

export type DiskFault = 'vote-not-persisted' | null

export class SimDisk {
  readonly durable: DurableState
  private pending: Batch[] = []

  constructor(
    initial: PersistedState,
    /** A planted driver bug: the vote is never written. */
    private readonly fault: DiskFault = null,
    /** Called with each batch as it becomes durable (the simulator checks it). */
    private readonly onDurable: (b: Batch, d: DurableState) => void = () => {}
  ) {
    this.durable = { hardState: initial.hardState, snapshot: initial.snapshot, entries: [...initial.entries] }
  }

  write(b: Batch): void {
    this.pending.push(b)
  }

  /** The hard state as written so far (synced or not): what a driver compares a new one with. */
  writtenHardState(): HardState {
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const hs = this.pending[i]!.hardState
      if (hs !== null) return hs
    }
    return this.durable.hardState
  }

  sync(): void {
    const pending = this.pending
    this.pending = []
    for (const b of pending) this.apply(b)
  }

  /** Power loss: unsynced writes vanish. */
  crash(): void {
    this.pending = []
  }

  /** The application's compaction: durable at once (it only drops entries already applied). */
  compact(meta: SnapshotMeta, data: Uint8Array): void {
    const d = this.durable
    const drop = meta.index - d.snapshot.meta.index
    if (drop <= 0) return
    d.entries = d.entries.slice(drop)
    d.snapshot = { meta, data }
  }

  private apply(b: Batch): void {
    const d = this.durable
    if (b.snapshot !== null) {
      d.snapshot = b.snapshot
      d.entries = []
    }
    if (b.entries.length > 0) {
      const first = b.entries[0]!.index
      const keep = first - d.snapshot.meta.index - 1
      if (keep < 0 || keep > d.entries.length) {
        throw new Error(
          `persisted log would have a gap: writing from ${first}, stored ${d.snapshot.meta.index + 1}..${d.snapshot.meta.index + d.entries.length}`
        )
      }
      d.entries.length = keep
      for (const e of b.entries) d.entries.push(e)
    }
    if (b.hardState !== null) {
      d.hardState = this.fault === 'vote-not-persisted' ? { ...b.hardState, vote: null } : b.hardState
    }
    this.onDurable(b, d)
  }

  load(): PersistedState {
    const d = this.durable
    return { hardState: d.hardState, snapshot: d.snapshot, entries: [...d.entries] }
  }

  /** Durable hash at index, or null if not stored (compacted below the snapshot or beyond the log). */
  hashAt(index: number): Uint8Array | null {
    const d = this.durable
    if (index === d.snapshot.meta.index) return d.snapshot.meta.hash
    const e = d.entries[index - d.snapshot.meta.index - 1]
    return e === undefined ? null : e.hash
  }
}
