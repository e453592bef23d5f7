// A simulated LevelDB for the whole-node simulator: the part of the abstract-level API that
// storage/raft-store.ts uses (get, batch, iterator, keys), in memory and driven by the simulator's
// clock. A batch becomes visible and resolves when the simulator completes it; a synced batch also
// makes every batch before it durable. A crash keeps the durable state plus any subset, in order, of
// the batches after the last completed sync (LevelDB drops a torn block of its log and replays the
// records after it), and the simulator can make a sync fail, flip bytes in stored values or wipe the
// disk.

import type { Database } from '../../storage/database.js'

type Op = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }

/** Keys as binary strings: JavaScript compares them in the byte order LevelDB sorts keys in. */
function k(key: Uint8Array): string {
  let s = ''
  for (let i = 0; i < key.length; i++) s += String.fromCharCode(key[i]!)
  return s
}

function unk(s: string): Uint8Array {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

function applyOps(map: Map<string, Uint8Array>, ops: readonly Op[]): void {
  for (const op of ops) {
    if (op.type === 'put') map.set(k(op.key), op.value)
    else map.delete(k(op.key))
  }
}

export interface PendingWrite {
  readonly ops: readonly Op[]
  readonly sync: boolean
  resolve: () => void
  reject: (err: Error) => void
}

/** One node's disk: what survives crashes. A SimLevel is one life's open handle on it. */
export class SimDiskStore {
  durable = new Map<string, Uint8Array>()
  /** Completed batches after the last completed sync, oldest first. */
  unsynced: (readonly Op[])[] = []
  /** Bumped at every crash: handles of an earlier life write nothing. */
  life = 0
  current: SimLevel | null = null

  open(schedule: (w: PendingWrite, db: SimLevel) => void): SimLevel {
    this.life++
    const db = new SimLevel(this, this.life, new Map(this.durable), schedule)
    this.current = db
    return db
  }

  /**
   * Power loss: the durable state plus the batches in `keep` (indexes into the unsynced and
   * in-flight batches, in order). Returns how many candidates there were.
   */
  crash(keep: (n: number) => boolean[]): { candidates: number; kept: number } {
    const db = this.current
    const candidates: (readonly Op[])[] = [...this.unsynced, ...(db?.inflight.map((w) => w.ops) ?? [])]
    const mask = keep(candidates.length)
    let kept = 0
    for (let i = 0; i < candidates.length; i++) {
      if (mask[i]) {
        applyOps(this.durable, candidates[i]!)
        kept++
      }
    }
    this.unsynced = []
    this.current = null
    this.life++
    return { candidates: candidates.length, kept }
  }

  wipe(): void {
    this.durable = new Map()
    this.unsynced = []
  }

  /** Flips one byte of the durable value at `key` (if stored); returns whether it did. */
  corrupt(key: Uint8Array, at: number, mask: number): boolean {
    const v = this.durable.get(k(key))
    if (v === undefined || v.length === 0) return false
    const copy = new Uint8Array(v)
    copy[at % copy.length] ^= mask === 0 ? 1 : mask
    this.durable.set(k(key), copy)
    return true
  }

  durableKeys(prefix: number): Uint8Array[] {
    const out: Uint8Array[] = []
    for (const key of this.durable.keys()) if (key.charCodeAt(0) === prefix) out.push(unk(key))
    return out
  }

  durableGet(key: Uint8Array): Uint8Array | undefined {
    return this.durable.get(k(key))
  }
}

interface RangeOptions {
  gte?: Uint8Array
  lte?: Uint8Array
  reverse?: boolean
  limit?: number
}

export class SimLevel {
  readonly inflight: PendingWrite[] = []

  constructor(
    private readonly disk: SimDiskStore,
    private readonly life: number,
    private readonly visible: Map<string, Uint8Array>,
    private readonly schedule: (w: PendingWrite, db: SimLevel) => void
  ) {}

  get alive(): boolean {
    return this.disk.life === this.life && this.disk.current === this
  }

  asDatabase(): Database {
    return this as unknown as Database
  }

  /** What a read would see now (for the simulator's checks). */
  visibleGet(key: Uint8Array): Uint8Array | undefined {
    return this.visible.get(k(key))
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.visible.get(k(key))
  }

  async put(key: Uint8Array, value: Uint8Array, options?: { sync?: boolean }): Promise<void> {
    await this.batch([{ type: 'put', key, value }], options)
  }

  async del(key: Uint8Array, options?: { sync?: boolean }): Promise<void> {
    await this.batch([{ type: 'del', key }], options)
  }

  async batch(ops: readonly Op[], options?: { sync?: boolean }): Promise<void> {
    if (!this.alive) return await new Promise(() => {}) // a dead process: nothing ever completes
    await new Promise<void>((resolve, reject) => {
      const w: PendingWrite = { ops: [...ops], sync: options?.sync === true, resolve, reject }
      this.inflight.push(w)
      this.schedule(w, this)
    })
  }

  /** The simulator completes the oldest in-flight write (`failSync`: its fsync reports an error). */
  complete(failSync: boolean): void {
    const w = this.inflight.shift()
    if (w === undefined || !this.alive) return
    applyOps(this.visible, w.ops)
    if (w.sync && failSync) {
      // What an fsync error leaves on disk is unknown: the write counts as unsynced.
      this.disk.unsynced.push(w.ops)
      w.reject(new Error('simulated fsync error (EIO)'))
      return
    }
    if (w.sync) {
      for (const ops of this.disk.unsynced) applyOps(this.disk.durable, ops)
      applyOps(this.disk.durable, w.ops)
      this.disk.unsynced = []
    } else {
      this.disk.unsynced.push(w.ops)
    }
    w.resolve()
  }

  private range(o: RangeOptions): string[] {
    const lo = o.gte === undefined ? null : k(o.gte)
    const hi = o.lte === undefined ? null : k(o.lte)
    const keys: string[] = []
    for (const key of this.visible.keys()) {
      if (lo !== null && key < lo) continue
      if (hi !== null && key > hi) continue
      keys.push(key)
    }
    keys.sort()
    if (o.reverse === true) keys.reverse()
    return o.limit !== undefined && o.limit >= 0 ? keys.slice(0, o.limit) : keys
  }

  iterator(o: RangeOptions = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    const keys = this.range(o)
    const visible = this.visible
    return (async function* () {
      for (const key of keys) {
        const v = visible.get(key)
        if (v !== undefined) yield [unk(key), v] as [Uint8Array, Uint8Array]
      }
    })()
  }

  keys(o: RangeOptions = {}): AsyncIterable<Uint8Array> {
    const keys = this.range(o)
    return (async function* () {
      for (const key of keys) yield unk(key)
    })()
  }

  async close(): Promise<void> {}
}
