// Byzantine members for the whole-node simulator. A liar runs a real board (so it votes,
// acknowledges and may lead), and on top of it sends lies of the kinds switched on: random
// messages of every type with any term and index, replays of what it received, forged entries,
// snapshots, acknowledgements and votes, and self-contradicting messages (different entries for one
// index and term to different members, votes for two candidates in one term). The transport
// authenticates the sender, so a liar lies in its own name only.

import { encodeHistory } from '../../board/history.js'
import { makeEntry, type Entry, type Message, type NodeId, type Raft } from '../../board/raft/index.js'
import type { Prng } from './prng.js'

export const BYZANTINE_KINDS = ['garbage', 'random', 'replay', 'forge', 'equivocate'] as const
/** Terms far above the board's: they break liveness until terms are checked for plausibility. */
export const ALL_BYZANTINE_KINDS = [...BYZANTINE_KINDS, 'huge-term'] as const
export type ByzantineKind = (typeof ALL_BYZANTINE_KINDS)[number]

export function isByzantineKind(s: string): s is ByzantineKind {
  return (ALL_BYZANTINE_KINDS as readonly string[]).includes(s)
}

/** The payload of every entry a liar makes up: honest nodes must never apply one on a liar's word. */
const LIE = Uint8Array.of(1, 0x66)
const MESSAGE_TYPES: readonly Message['type'][] = [
  'app',
  'appResp',
  'vote',
  'voteResp',
  'preVote',
  'preVoteResp',
  'heartbeat',
  'heartbeatResp',
  'snap',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
  'transferLeader'
]

export class Byzantine {
  private readonly seen: Message[] = []

  constructor(
    private readonly rng: Prng,
    private readonly kinds: readonly ByzantineKind[],
    private readonly sendRaw: (from: NodeId, m: Message) => void,
    private readonly members: () => NodeId[],
    /** Puts bytes on the wire as a frame, whatever they are. */
    private readonly sendFrame: (from: NodeId, to: NodeId, bytes: Uint8Array) => void
  ) {}

  observe(m: Message): void {
    if (this.seen.length >= 64) this.seen.splice(this.rng.int(64), 1)
    this.seen.push(m)
  }

  /** Outbound from the liar's own board: sometimes sent altered, or not at all. Returns true if replaced. */
  tamper(from: NodeId, m: Message): boolean {
    if (this.kinds.length === 0 || !this.rng.chance(0.3)) return false
    if (m.type === 'appResp' && this.kinds.includes('forge')) {
      // Claims to hold everything, or far more than the leader has.
      this.sendRaw(from, { ...m, reject: false, index: m.index + this.rng.range(0, 50) })
      return true
    }
    if (m.type === 'app' && m.entries.length > 0 && this.kinds.includes('equivocate')) {
      this.sendRaw(from, {
        ...m,
        entries: this.forgeChain(m.prevHash, m.entries[0]!.index, m.entries[0]!.term, m.entries.length)
      })
      return true
    }
    if (m.type === 'voteResp' && this.kinds.includes('equivocate')) {
      this.sendRaw(from, { ...m, reject: false })
      return true
    }
    return false
  }

  /** Spontaneous lies from `from` (a liar whose board is up). Returns how many messages it sent. */
  lie(from: NodeId, raft: Raft): number {
    if (this.kinds.length === 0) return 0
    const others = this.members().filter((id) => id !== from)
    if (others.length === 0) return 0
    const kind = this.rng.pick(this.kinds)
    const to = this.rng.pick(others)
    const term =
      kind === 'huge-term' ? 2 ** 40 + this.rng.int(1000) : Math.max(0, raft.currentTerm + this.rng.range(-2, 2))
    const last = raft.lastIndex
    switch (kind) {
      case 'garbage': {
        // Not a message at all, or a message truncated or with bytes flipped: the transport's
        // decoder must drop it.
        const bytes = Uint8Array.from({ length: this.rng.range(0, 80) }, () => this.rng.int(256))
        if (bytes.length > 0 && this.rng.chance(0.5)) bytes[0] = 1 // a plausible wire version
        this.sendFrame(from, to, bytes)
        return 1
      }
      case 'replay': {
        if (this.seen.length === 0) return 0
        const m = this.rng.pick(this.seen)
        this.sendRaw(from, { ...m, from, to } as Message)
        return 1
      }
      case 'forge':
        this.sendRaw(from, this.forged(from, to, term, raft))
        return 1
      case 'equivocate': {
        // The same index and term, different entries, to two members.
        const index = Math.max(1, last + this.rng.range(-3, 2))
        const prevHash = raft.hashAt(index - 1) ?? new Uint8Array(32)
        let n = 0
        for (const target of others.slice(0, 2)) {
          this.sendRaw(from, {
            type: 'app',
            from,
            to: target,
            term,
            prevIndex: index - 1,
            prevTerm: raft.termAt(index - 1) ?? 0,
            prevHash,
            entries: this.forgeChain(prevHash, index, term, 1),
            commit: index
          })
          n++
        }
        return n
      }
      default:
        this.sendRaw(from, this.randomMessage(from, to, term, last))
        return 1
    }
  }

  private forgeChain(prevHash: Uint8Array, index: number, term: number, count: number): Entry[] {
    const out: Entry[] = []
    let prev = prevHash
    for (let i = 0; i < count; i++) {
      const data = new Uint8Array(LIE.length + 4)
      data.set(LIE, 0)
      new DataView(data.buffer).setUint32(LIE.length, this.rng.int(2 ** 31))
      const e = makeEntry(prev, index + i, term, 'normal', data)
      out.push(e)
      prev = e.hash
    }
    return out
  }

  private forged(from: NodeId, to: NodeId, term: number, raft: Raft): Message {
    const last = raft.lastIndex
    const roll = this.rng.int(5)
    if (roll === 0) {
      // Entries on top of a committed prefix, with a commit index that covers them.
      const prevIndex = Math.max(0, raft.commitIndex - this.rng.int(3))
      const prevHash = raft.hashAt(prevIndex) ?? new Uint8Array(32)
      const entries = this.forgeChain(prevHash, prevIndex + 1, term, this.rng.range(1, 3))
      return {
        type: 'app',
        from,
        to,
        term,
        prevIndex,
        prevTerm: raft.termAt(prevIndex) ?? term,
        prevHash,
        entries,
        commit: prevIndex + entries.length
      }
    }
    if (roll === 1) {
      // A history that does not continue the receiver's log, or one made up from the start.
      const firstIndex = this.rng.chance(0.5) ? 1 : Math.max(1, raft.commitIndex - 2)
      const prevHash = firstIndex === 1 ? new Uint8Array(32) : (raft.hashAt(firstIndex - 1) ?? new Uint8Array(32))
      const entries = this.forgeChain(prevHash, firstIndex, term, this.rng.range(1, 4))
      const lastEntry = entries[entries.length - 1]!
      return {
        type: 'snap',
        from,
        to,
        term,
        snapshot: {
          meta: { index: lastEntry.index, term, hash: lastEntry.hash, configuration: raft.configuration() },
          data: encodeHistory(entries, firstIndex)
        }
      }
    }
    if (roll === 2) return { type: 'heartbeat', from, to, term, commit: last + this.rng.range(0, 1000), context: null }
    if (roll === 3) return { type: 'voteResp', from, to, term, reject: false }
    return {
      type: 'appResp',
      from,
      to,
      term,
      index: last + this.rng.range(0, 100),
      reject: false,
      hintIndex: 0,
      hintTerm: 0
    }
  }

  private randomMessage(from: NodeId, to: NodeId, term: number, last: number): Message {
    const type = this.rng.pick(MESSAGE_TYPES)
    const index = Math.max(0, last + this.rng.range(-5, 5))
    const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => this.rng.int(256))
    switch (type) {
      case 'app':
        return {
          type,
          from,
          to,
          term,
          prevIndex: index,
          prevTerm: this.rng.int(term + 1),
          prevHash: bytes(32),
          entries: [],
          commit: index + this.rng.int(5)
        }
      case 'appResp':
        return {
          type,
          from,
          to,
          term,
          index,
          reject: this.rng.chance(0.5),
          hintIndex: this.rng.int(index + 1),
          hintTerm: this.rng.int(term + 1)
        }
      case 'vote':
      case 'preVote':
        return {
          type,
          from,
          to,
          term,
          lastIndex: index + this.rng.int(10),
          lastTerm: term,
          force: this.rng.chance(0.3)
        }
      case 'voteResp':
      case 'preVoteResp':
        return { type, from, to, term, reject: this.rng.chance(0.5) }
      case 'heartbeat':
        return { type, from, to, term, commit: index, context: this.rng.chance(0.5) ? null : bytes(8) }
      case 'heartbeatResp':
        return { type, from, to, term, context: this.rng.chance(0.5) ? null : bytes(8) }
      case 'snap':
        return {
          type,
          from,
          to,
          term,
          snapshot: {
            meta: { index, term, hash: bytes(32), configuration: { voters: [from], learners: [] } },
            data: bytes(this.rng.int(64))
          }
        }
      case 'timeoutNow':
        return { type, from, to, term }
      case 'readIndex':
        return { type, from, to, term, context: bytes(16) }
      case 'readIndexResp':
        return { type, from, to, term, index, context: bytes(16) }
      default:
        return { type: 'transferLeader', from, to, term, target: this.rng.pick([...this.members(), 'nobody']) }
    }
  }
}
