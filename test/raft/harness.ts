// Test harness: drives Raft cores message by message through an in-memory store and network.

import assert from 'node:assert/strict'
import {
  bootstrapState,
  makeEntry,
  ProposalError,
  Raft,
  ZERO_HASH,
  type Alarm,
  type Configuration,
  type Entry,
  type EntryType,
  type HardState,
  type Message,
  type NodeId,
  type PersistedState,
  type RaftConfig,
  type ReadState,
  type Ready,
  type Snapshot
} from '../../board/raft/index.js'

export type TestConfig = Partial<Omit<RaftConfig, 'id'>>

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

/** Builds a hash-chained log from a list of terms, starting after (prevIndex, prevHash). */
export function chain(
  terms: readonly number[],
  prevHash: Uint8Array = ZERO_HASH,
  prevIndex = 0,
  type: EntryType = 'normal'
): Entry[] {
  const out: Entry[] = []
  let h = prevHash
  terms.forEach((t, k) => {
    const e = makeEntry(h, prevIndex + 1 + k, t, type, enc(`e${prevIndex + 1 + k}t${t}`))
    out.push(e)
    h = e.hash
  })
  return out
}

/**
 * A persisted state whose log is the founding entry (index 1, term 1) followed by entries of the
 * given terms (from index 2), with the given hard state.
 */
export function stateWithLog(
  config: Configuration,
  terms: readonly number[],
  hs: Partial<HardState> = {}
): PersistedState {
  const boot = bootstrapState(config)
  const first = boot.entries[0]!
  const rest = chain(terms, first.hash, 1)
  const lastTerm = terms.length > 0 ? terms[terms.length - 1]! : 1
  return {
    hardState: { term: hs.term ?? lastTerm, vote: hs.vote ?? null, commit: hs.commit ?? 1 },
    snapshot: boot.snapshot,
    entries: [first, ...rest]
  }
}

/** The node's durable state, mirroring what a driver writes for each Ready. */
export class MemStore {
  hardState: HardState
  snapshot: Snapshot
  entries: Entry[]

  constructor(initial: PersistedState) {
    this.hardState = initial.hardState
    this.snapshot = initial.snapshot
    this.entries = [...initial.entries]
  }

  persist(rd: Ready): void {
    if (rd.snapshot !== null) {
      this.snapshot = rd.snapshot
      this.entries = []
    }
    if (rd.entries.length > 0) {
      const keep = rd.entries[0]!.index - this.snapshot.meta.index - 1
      assert(keep >= 0 && keep <= this.entries.length, 'gap in stored log')
      this.entries.length = keep
      this.entries.push(...rd.entries)
    }
    if (rd.hardState !== null) this.hardState = rd.hardState
  }

  load(): PersistedState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries] }
  }
}

export class TestNode {
  raft: Raft
  readonly store: MemStore
  applied: Entry[] = []
  readStates: ReadState[] = []
  alarms: Alarm[] = []
  snapshotsRestored: Snapshot[] = []
  /** Readies handled, for tests that inspect them. */
  readies: Ready[] = []

  constructor(
    readonly id: NodeId,
    initial: PersistedState,
    readonly config: TestConfig
  ) {
    this.store = new MemStore(initial)
    this.raft = new Raft({ rand: () => 0, ...config, id }, initial)
  }

  /** Handles every pending Ready as a correct driver would; returns the messages to send. */
  handle(): Message[] {
    const out: Message[] = []
    while (this.raft.hasReady()) {
      const rd = this.raft.ready()
      this.readies.push(rd)
      this.store.persist(rd)
      out.push(...rd.messages)
      if (rd.snapshot !== null) this.snapshotsRestored.push(rd.snapshot)
      this.applied.push(...rd.committedEntries)
      this.readStates.push(...rd.readStates)
      this.alarms.push(...rd.alarms)
      this.raft.advance(rd)
    }
    return out
  }

  restart(config: TestConfig = this.config): void {
    this.raft = new Raft({ rand: () => 0, ...config, id: this.id }, this.store.load())
    this.applied = []
  }

  /** Normal entries applied, as strings (the founding entry and no-ops are skipped). */
  appliedData(): string[] {
    return this.applied.filter((e) => e.type === 'normal' && e.data.length > 0).map((e) => dec(e.data))
  }
}

export interface ClusterOptions {
  voters: number
  learners?: number
  config?: TestConfig
  /** Per-node randomness (default: always 0, so every timeout is exactly electionTicks). */
  rand?: (id: NodeId) => (n: number) => number
}

/** A synchronous network of TestNodes; links can be cut and messages filtered. */
export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>()
  private readonly cut = new Set<string>()
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true
  /** Every message delivered, in order. */
  delivered: Message[] = []

  constructor(opts: ClusterOptions) {
    const voters = Array.from({ length: opts.voters }, (_, i) => `n${i + 1}`)
    const learners = Array.from({ length: opts.learners ?? 0 }, (_, i) => `n${opts.voters + i + 1}`)
    const state = bootstrapState({ voters, learners })
    for (const id of [...voters, ...learners]) {
      const config = opts.rand === undefined ? (opts.config ?? {}) : { ...opts.config, rand: opts.rand(id) }
      this.nodes.set(id, new TestNode(id, state, config))
    }
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id)
    assert(n !== undefined, `no node ${id}`)
    return n
  }

  raft(id: NodeId): Raft {
    return this.node(id).raft
  }

  add(id: NodeId, initial: PersistedState, config: TestConfig = {}): TestNode {
    const n = new TestNode(id, initial, config)
    this.nodes.set(id, n)
    return n
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue
      this.cut.add(`${id}>${other}`)
      this.cut.add(`${other}>${id}`)
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`)
  }

  heal(): void {
    this.cut.clear()
    this.filter = () => true
  }

  /** Delivers messages (and their consequences) until the network is quiet. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      const msgs: Message[] = []
      for (const n of this.nodes.values()) msgs.push(...n.handle())
      if (msgs.length === 0) return
      for (const m of msgs) this.deliver(m)
    }
    assert.fail('network did not stabilize')
  }

  deliver(m: Message): void {
    if (this.cut.has(`${m.from}>${m.to}`) || !this.filter(m)) return
    const n = this.nodes.get(m.to)
    if (n === undefined) return
    this.delivered.push(m)
    n.raft.step(m)
  }

  /** Ticks one node n times (without stabilizing). */
  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.raft(id).tick()
  }

  /** Ticks every node once, then stabilizes; repeated n times. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.raft.tick()
      this.stabilize()
    }
  }

  /** Makes `id` time out and campaign, then stabilizes. */
  campaign(id: NodeId): void {
    const r = this.raft(id)
    for (let i = 0; i < 100 && r.currentRole === 'follower'; i++) r.tick()
    assert.notEqual(r.currentRole, 'follower', `${id} did not campaign`)
    this.stabilize()
  }

  /** Elects n1 (or `id`) in a fresh cluster. */
  elect(id: NodeId = 'n1'): Raft {
    this.campaign(id)
    assert.equal(this.raft(id).currentRole, 'leader', `${id} did not win`)
    return this.raft(id)
  }

  leader(): Raft | null {
    let best: Raft | null = null
    for (const n of this.nodes.values()) {
      if (n.raft.currentRole === 'leader' && (best === null || n.raft.currentTerm > best.currentTerm)) best = n.raft
    }
    return best
  }
}

/** Runs fn and returns the ProposalError reason it throws, or 'accepted' if it throws nothing. */
export function refusal(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof ProposalError) return err.reason
    throw err
  }
  return 'accepted'
}

export function msgsOfType<T extends Message['type']>(msgs: readonly Message[], type: T): (Message & { type: T })[] {
  return msgs.filter((m) => m.type === type) as (Message & { type: T })[]
}

/** Distinct fixed timeouts per node: node k (n1, n2, ...) gets rand = (k * 3) mod n. */
export const staggered =
  (id: NodeId) =>
  (n: number): number =>
    (Number(id.replace(/\D/g, '')) * 3) % n
