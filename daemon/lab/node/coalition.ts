import { BOARD_ENTRY_VERSION, ENTRY_KIND } from '../../../board/entries.js'
import { computeEntryHash, type Entry, type Message, type Raft } from '../../../board/raft/index.js'

/**
 * What a coalition member does while it runs (lab mode only; `lab-coalition=1`, which
 * `poolboard lab drop` sets after rewriting the node's log offline, daemon/lab/campaign/drop.ts).
 *
 * Its log holds a leader no-op where the dropped statement was, with the same index and term, and
 * the hashes after it re-computed. Honest members compare only index and term when they vote, so
 * they grant it their votes as to any up-to-date member: the vote lie needs no code. Its core runs
 * with `verifyHashChain` off (it must take an honest leader's appends that disagree with its own
 * hashes), and this hook keeps its own chain whole: an honest leader's append is re-hashed onto
 * this node's log before the core sees it, as if the leader had offered the rewritten history.
 * While it leads it keeps evidence off the board (it would name the coalition's equivocator).
 */

type LogView = Pick<Raft, 'entryAt' | 'termAt' | 'hashAt'>

/** Re-bases an append on this node's own hashes: entries it holds (same index and term) are its own, the others chain from them. */
export function rehashInbound(m: Message, log: LogView): Message {
  if (m.type !== 'app') return m
  const prevHash = log.hashAt(m.prevIndex)
  if (prevHash === null || log.termAt(m.prevIndex) !== m.prevTerm) return m // the core rejects it anyway
  let prev = prevHash
  const entries: Entry[] = []
  for (const e of m.entries) {
    const own = log.termAt(e.index) === e.term ? log.entryAt(e.index) : undefined
    const rebased = own ?? { ...e, hash: computeEntryHash(prev, e.index, e.term, e.type, e.data) }
    entries.push(rebased)
    prev = rebased.hash
  }
  return { ...m, prevHash, entries }
}

/** While a coalition member leads: evidence entries are dropped. */
export function coalitionDrop(data: Uint8Array): string | null {
  if (data.length >= 2 && data[0] === BOARD_ENTRY_VERSION && data[1] === ENTRY_KIND.evidence)
    return 'a coalition leader keeps equivocation evidence off the board'
  return null
}
