// What both simulators (sim.ts: the core; node-sim.ts: the whole node) know is committed, and the
// checks made against it: state machine safety (every applied entry is the committed one, in
// order), election safety (one leader per term) and leader completeness (a new leader holds every
// entry committed in an earlier term).

import { equalBytes, toHex } from '../../protocol/bytes.js'
import {
  applyConfEntry,
  decodeConfEntry,
  EMPTY_CONFIGURATION,
  ZERO_HASH,
  type Configuration,
  type Entry,
  type NodeId,
  type Raft
} from '../../board/raft/index.js'

/** A property the run broke; the message names it. */
export class Violation extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'Violation'
  }
}

export class CommittedLog {
  /** The hash of the entry committed at each index (index 0: the empty log). */
  readonly hashes: Uint8Array[] = [ZERO_HASH]
  /** The term in which each index became known committed (for leader completeness). */
  readonly terms: number[] = [0]
  /** Every committed configuration, with the index of its entry. */
  readonly configs: { index: number; config: Configuration }[] = [{ index: 0, config: EMPTY_CONFIGURATION }]
  private readonly leaderOfTerm = new Map<number, NodeId>()

  get lastIndex(): number {
    return this.hashes.length - 1
  }

  /** The latest committed configuration. */
  get config(): Configuration {
    return this.configs[this.configs.length - 1]!.config
  }

  /**
   * Why `e`, applied by `node`, is not the entry committed at its index nor the next one to
   * commit; null if it is one of them.
   */
  appliedProblem(node: NodeId, e: Entry): string | null {
    if (e.index < this.hashes.length) {
      if (equalBytes(this.hashes[e.index]!, e.hash)) return null
      return (
        `state machine safety: ${node} applied index ${e.index} (term ${e.term}, hash ${toHex(e.hash).slice(0, 12)}), ` +
        `but a different entry (hash ${toHex(this.hashes[e.index]!).slice(0, 12)}) was applied there before`
      )
    }
    if (e.index !== this.hashes.length)
      return `${node} applied index ${e.index} but nothing is known committed after ${this.lastIndex}`
    return null
  }

  /** Records `e` (the next index) as committed, known in `term` (the applier's). */
  add(e: Entry, term: number): void {
    if (e.index !== this.hashes.length) throw new Error(`committed log: ${e.index} is not the next index`)
    this.hashes.push(e.hash)
    this.committedUpTo(e.index, term)
    if (e.type === 'confChange')
      this.configs.push({ index: e.index, config: applyConfEntry(this.config, decodeConfEntry(e.data)) })
  }

  /** Indexes up to `index` not yet known committed became so in `term` (a leader's commit moved). */
  committedUpTo(index: number, term: number): void {
    for (let i = this.terms.length; i <= index; i++) this.terms.push(term)
  }

  /** `node` leads `term` now: it must be the only leader of the term and hold every earlier commit. */
  checkNewLeader(node: NodeId, term: number, raft: Raft): void {
    const other = this.leaderOfTerm.get(term)
    if (other !== undefined && other !== node)
      throw new Violation(`election safety: ${other} and ${node} both lead term ${term}`)
    this.leaderOfTerm.set(term, node)
    const snap = raft.snapshotMeta()
    for (let c = 1; c < this.hashes.length; c++) {
      if (this.terms[c]! >= term || c < snap.index) continue
      const hash = c === snap.index ? snap.hash : raft.hashAt(c)
      if (hash === null || !equalBytes(hash, this.hashes[c]!)) {
        throw new Violation(
          `leader completeness: ${node} leads term ${term} (last index ${raft.lastIndex}) without the entry committed at ${c} in term ${this.terms[c]}`
        )
      }
    }
  }
}
