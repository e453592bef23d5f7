import { createHash } from 'node:crypto'
import { BOARD_ENTRY_VERSION, ENTRY_KIND } from '../../board/entries.js'
import type { Entry } from '../../board/raft/index.js'
import { equalBytes, toHex } from '../../protocol/bytes.js'
import { Writer, decodeAll, type Reader } from '../../protocol/codec.js'
import { DefenseRefusal } from './refusal.js'
import type { DefensePartOptions } from './options.js'
import { sleep } from '../host/wait.js'
import { RpcError } from '../net/rpc.js'

/**
 * The quorum-read defense: a node compares the board history it holds with a majority of the
 * members instead of trusting the one leader it caught up from.
 *
 * A leader in a coalition can serve a history without a committed statement, and a majority of
 * that history's hosts can even commit new entries on top of it; but a statement that was
 * committed is held by a majority of the voters, so any majority of members includes one of its
 * honest holders unless the coalition fills the whole majority. The node asks every member for a
 * digest of the committed entries it has not yet cross-checked, takes the first majority of
 * answers (itself included), and refuses to sign if any of them holds another entry at an index
 * both hold committed, naming who and where.
 *
 * Entries are compared by term, kind and a hash of their content, not by the chain hash a node
 * stores: a node that accepted a rewritten history without checking hashes (hash-chain off) stores
 * the rewriter's hashes after its own, and only the content says where the histories part.
 *
 * `/poolboard/board/digest/1.0.0`, request: `version u8 = 1 | from u53 | to u53` (at most
 * MAX_DIGEST_ENTRIES); response: `version u8 = 1 | applied u53 | from u53 | count | count × (term
 * u53 | kind u8 | content hash 32)` for the committed entries from `from` up to min(to, applied).
 */

export const DIGEST_PROTOCOL = '/poolboard/board/digest/1.0.0'
const DIGEST_VERSION = 1
export const MAX_DIGEST_ENTRIES = 1_024
/** A check covers at most this many of the newest entries not yet cross-checked. */
const MAX_CHECK_ENTRIES = 16 * MAX_DIGEST_ENTRIES
/**
 * How often a node cross-checks newly applied history in the background (after catching up, say).
 * Signing always checks what is left first, so this only bounds how stale a check can be.
 */
const CHECK_INTERVAL_MS = 10_000
/** Digests of the newest applied entries kept in memory, so answering a member reads no disk. */
const DIGEST_CACHE_ENTRIES = 65_536
/** How long a check waits for a majority. */
const QUORUM_TIMEOUT_MS = 3_000
/** How long a member slightly behind the asker waits to apply the range before it answers. */
const ANSWER_CATCH_UP_MS = 1_000
/** Answers waiting for this node to apply what the asker applied, at most (each is one asker's request). */
const MAX_CATCH_UP_WAITERS = 256

/** Digest kind codes: the board entry kinds (board/entries.ts) and these. */
const KIND_NOOP = 0
const KIND_CONFIG = 0xfe
const KIND_UNKNOWN = 0xff
const KIND_NAMES: Record<number, string> = {
  [KIND_NOOP]: 'an empty leader entry',
  [KIND_CONFIG]: 'a membership change',
  [KIND_UNKNOWN]: 'an entry it cannot read',
  ...Object.fromEntries(Object.entries(ENTRY_KIND).map(([name, code]) => [code, `a ${name} entry`]))
}

export interface EntryDigest {
  index: number
  term: number
  kind: number
  contentHash: Uint8Array
}
export interface DigestRequest {
  from: number
  to: number
}
export interface DigestResponse {
  applied: number
  from: number
  entries: Array<Omit<EntryDigest, 'index'>>
}

/** Term, kind and content hash of one entry: equal digests mean the same entry. */
export function digestOf(e: Entry): EntryDigest {
  let kind = KIND_UNKNOWN
  if (e.type === 'confChange') kind = KIND_CONFIG
  else if (e.data.length === 0) kind = KIND_NOOP
  else if (
    e.data.length >= 2 &&
    e.data[0] === BOARD_ENTRY_VERSION &&
    Object.values(ENTRY_KIND).includes(e.data[1] as never)
  )
    kind = e.data[1]
  const h = createHash('sha256')
    .update(Uint8Array.of(e.type === 'normal' ? 0 : 1))
    .update(e.data)
    .digest()
  return { index: e.index, term: e.term, kind, contentHash: new Uint8Array(h.buffer, h.byteOffset, h.byteLength) }
}

export function encodeDigestRequest(r: DigestRequest): Uint8Array {
  return new Writer(24).u8(DIGEST_VERSION).u53(r.from, 'from').u53(r.to, 'to').finish()
}

export function decodeDigestRequest(bytes: Uint8Array): DigestRequest {
  return decodeAll(bytes, 'digest request', (r: Reader) => {
    r.version([DIGEST_VERSION])
    const from = r.u53('from')
    const to = r.u53('to')
    r.check(from >= 1, 'from', 'expected an index >= 1')
    r.check(
      to >= from && to - from < MAX_DIGEST_ENTRIES,
      'to',
      () => `expected from ${from} to ${from + MAX_DIGEST_ENTRIES - 1}, got ${to}`
    )
    return { from, to }
  })
}

export function encodeDigestResponse(r: DigestResponse): Uint8Array {
  const w = new Writer(32 + r.entries.length * 48).u8(DIGEST_VERSION).u53(r.applied, 'applied').u53(r.from, 'from')
  w.array(
    r.entries,
    MAX_DIGEST_ENTRIES,
    (w, e) => {
      w.u53(e.term, 'term').u8(e.kind, 'kind').bytes32(e.contentHash, 'contentHash')
    },
    'entries'
  )
  return w.finish()
}

export function decodeDigestResponse(bytes: Uint8Array): DigestResponse {
  return decodeAll(bytes, 'digest response', (r: Reader) => {
    r.version([DIGEST_VERSION])
    const applied = r.u53('applied')
    const from = r.u53('from')
    const entries = r.array(
      'entries',
      MAX_DIGEST_ENTRIES,
      (r) => ({ term: r.u53('term'), kind: r.u8('kind'), contentHash: r.bytes32('contentHash') }),
      41
    )
    r.check(from >= 1 && from + entries.length - 1 <= applied, 'entries', 'entries beyond the applied index')
    return { applied, from, entries }
  })
}

/** A member holding another entry than this node at an index both hold committed. */
export interface Disagreement {
  peerId: string
  member: string
  index: number
  mine: EntryDigest
  theirs: EntryDigest
}

export interface QuorumVerdict {
  /** Members whose answers covered the whole range, in the order they came. */
  answered: string[]
  disagreements: Disagreement[]
  /** Whether a majority of the members (this node included) answered. */
  majority: boolean
  to: number
}

export class QuorumRead {
  /** Every committed entry up to here was found identical on a majority of members. */
  verifiedThrough = 0
  private timer: NodeJS.Timeout | undefined
  private checking: Promise<QuorumVerdict> | null = null
  private stopped = false
  /** Digests of recently applied entries by index; the oldest are dropped first. */
  private readonly digests = new Map<number, EntryDigest>()
  /** Answers waiting until this node has applied an index (woken by onApplied, not polled). */
  private readonly catchUp = new Set<{ index: number; wake: () => void }>()
  /** The last entry onApplied saw. */
  private appliedThrough = 0

  constructor(private readonly options: DefensePartOptions) {}

  async start(): Promise<void> {
    const { rpc, answerDelayMs } = this.options
    await rpc.handle(DIGEST_PROTOCOL, async (request) => {
      let req: DigestRequest
      try {
        req = decodeDigestRequest(request)
      } catch (err) {
        throw new RpcError('malformed', (err as Error).message)
      }
      if (answerDelayMs > 0) await sleep(answerDelayMs)
      // The asker has applied up to `to`; a member a few entries behind answers once it has too.
      await this.appliedAtLeast(req.to, ANSWER_CATCH_UP_MS)
      const applied = this.appliedIndex()
      const to = Math.min(req.to, applied)
      const entries = to < req.from ? [] : await this.digestsOf(req.from, to)
      return encodeDigestResponse({ applied, from: req.from, entries })
    })
    if (!this.options.enabled) return
    this.timer = setInterval(() => {
      this.background()
    }, CHECK_INTERVAL_MS)
    this.timer.unref()
  }

  /** Remembers the digests of entries just applied (each entry is hashed once, here). */
  onApplied(entries: readonly Entry[]): void {
    // Kept whether or not this node asks: its answers to the members that do come from here, as
    // soon as an entry is applied (the store's applied index follows once the batch is written).
    for (const e of entries) {
      this.digests.set(e.index, digestOf(e))
      if (this.digests.size > DIGEST_CACHE_ENTRIES) this.digests.delete(this.digests.keys().next().value as number)
    }
    if (entries.length > 0) this.appliedThrough = Math.max(this.appliedThrough, entries[entries.length - 1].index)
    const applied = this.appliedIndex()
    for (const w of this.catchUp) if (w.index <= applied) w.wake()
  }

  /** How far this node has applied: in memory (onApplied) or in the store, whichever is further. */
  private appliedIndex(): number {
    return Math.max(this.options.board.appliedIndex, this.appliedThrough)
  }

  /** Resolves once this node has applied `index`, or after `timeoutMs` (the answer then says how far it got). */
  private async appliedAtLeast(index: number, timeoutMs: number): Promise<void> {
    if (this.appliedIndex() >= index || this.stopped || this.catchUp.size >= MAX_CATCH_UP_WAITERS) return
    await new Promise<void>((resolve) => {
      const waiter = {
        index,
        wake: () => {
          clearTimeout(timer)
          this.catchUp.delete(waiter)
          resolve()
        }
      }
      const timer = setTimeout(waiter.wake, timeoutMs)
      this.catchUp.add(waiter)
    })
  }

  /** Digests of the committed entries from..to this node holds, from memory where it can. */
  private async digestsOf(from: number, to: number): Promise<EntryDigest[]> {
    const out: EntryDigest[] = []
    let i = from
    while (i <= to) {
      const d = this.digests.get(i)
      if (d !== undefined) {
        out.push(d)
        i++
        continue
      }
      // Not in memory: from the store, which holds what was applied through its applied index.
      const storedThrough = Math.min(to, this.options.board.appliedIndex)
      if (i > storedThrough) break
      let end = i
      while (end < storedThrough && !this.digests.has(end + 1)) end++
      const stored = await this.options.board.committedEntries(i, end - i + 1)
      if (stored.length === 0) break
      out.push(...stored.map(digestOf))
      i += stored.length
    }
    return out
  }

  stop(): void {
    this.stopped = true
    for (const w of this.catchUp) w.wake()
    if (this.timer !== undefined) clearInterval(this.timer)
  }

  /** Before signing: the history up to the applied index must match a majority's. Throws DefenseRefusal. */
  async beforeSign(deadlineMs: number): Promise<void> {
    if (!this.options.enabled) return
    // A background check in flight covers part of the range: let it end first.
    if (this.checking !== null) await this.checking.catch(() => undefined)
    const to = this.options.board.appliedIndex
    if (to <= this.verifiedThrough) return
    const verdict = await this.run(to, Math.min(deadlineMs, Date.now() + QUORUM_TIMEOUT_MS))
    const d = verdict.disagreements[0]
    if (d !== undefined) {
      throw new DefenseRefusal(
        'quorum-read',
        `${describe(d)}: some member holds a different board history; I do not sign on a history a majority does not confirm`
      )
    }
    if (!verdict.majority) {
      const n = this.options.config.members.length
      throw new DefenseRefusal(
        'quorum-read',
        `only ${verdict.answered.length + 1} of ${n} members (me included) confirmed the board history up to index ${to} in time (${verdict.answered.join(', ') || 'nobody else'}); a majority is ${Math.floor(n / 2) + 1}`
      )
    }
  }

  /**
   * Starts checking the history this node has applied so far, ahead of a beforeSign that will
   * follow its linearizable read: beforeSign then waits for this check and checks only what the
   * read applied after it, so the two run side by side and nothing goes unchecked.
   */
  prepare(): void {
    if (!this.options.enabled || this.stopped || this.checking !== null) return
    const to = this.options.board.appliedIndex
    if (to <= this.verifiedThrough) return
    this.run(to, Date.now() + QUORUM_TIMEOUT_MS).catch((err: unknown) => {
      this.options.logger.debug({ err: (err as Error).message }, 'quorum read: check ahead of a signature failed')
    })
  }

  private background(): void {
    if (this.stopped || this.checking !== null) return
    const { board } = this.options
    const to = board.appliedIndex
    if (board.leader === null || to <= this.verifiedThrough || to < board.commit) return
    this.run(to, Date.now() + QUORUM_TIMEOUT_MS).catch((err: unknown) => {
      this.options.logger.debug({ err: (err as Error).message }, 'quorum read: background check failed')
    })
  }

  private async run(to: number, deadlineMs: number): Promise<QuorumVerdict> {
    const work = this.check(to, deadlineMs)
    this.checking = work
    try {
      return await work
    } finally {
      if (this.checking === work) this.checking = null
    }
  }

  /** Cross-checks the entries after `verifiedThrough` up to `to`, page by page, with a majority. */
  private async check(to: number, deadlineMs: number): Promise<QuorumVerdict> {
    let from = Math.max(this.verifiedThrough + 1, to - MAX_CHECK_ENTRIES + 1)
    let verdict: QuorumVerdict = { answered: [], disagreements: [], majority: true, to }
    while (from <= to) {
      const last = Math.min(to, from + MAX_DIGEST_ENTRIES - 1)
      verdict = await this.page(from, last, deadlineMs)
      for (const d of verdict.disagreements) {
        this.options.log.record(`quorum:${d.peerId}:${d.index}:${toHex(d.theirs.contentHash)}`, {
          defense: 'quorum-read',
          how: 'detected',
          message: `${describe(d)} (asked ${verdict.answered.join(', ')} up to index ${last})`,
          members: [d.member],
          index: d.index,
          statementId: null
        })
      }
      if (verdict.disagreements.length > 0 || !verdict.majority) return verdict
      this.verifiedThrough = Math.max(this.verifiedThrough, last)
      this.options.logger.debug(
        { from, to: last, answered: verdict.answered },
        "quorum read: a majority agrees with this node's history"
      )
      from = last + 1
    }
    return verdict
  }

  /** One page: every other member is asked; the first majority of complete answers decides. */
  private async page(from: number, to: number, deadlineMs: number): Promise<QuorumVerdict> {
    const { config, selfPeerId, rpc, nameOf } = this.options
    const own = await this.digestsOf(from, to)
    if (own.length !== to - from + 1)
      throw new Error(`quorum read: this node holds ${own.length} of the entries ${from}..${to}`)
    const others = config.members.filter((m) => m.peerId !== selfPeerId)
    const need = Math.floor(config.members.length / 2)
    const request = encodeDigestRequest({ from, to })
    const answered: string[] = []
    const disagreements: Disagreement[] = []
    if (need === 0) return { answered, disagreements, majority: true, to }
    return await new Promise<QuorumVerdict>((resolve) => {
      let done = false
      let pending = others.length
      const finish = (): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        resolve({ answered: [...answered], disagreements: [...disagreements], majority: answered.length >= need, to })
      }
      const timer = setTimeout(finish, Math.max(0, deadlineMs - Date.now()))
      for (const m of others) {
        rpc
          .call(m.peerId, DIGEST_PROTOCOL, request, Math.max(1, deadlineMs - Date.now()))
          .then((bytes) => {
            if (done) return
            const answer = decodeDigestResponse(bytes)
            if (answer.from !== from || answer.applied < to || answer.entries.length !== to - from + 1) return // behind: it cannot confirm
            answered.push(nameOf(m.peerId))
            for (let k = 0; k < own.length; k++) {
              const theirs = { index: from + k, ...answer.entries[k] }
              const mine = own[k]
              if (
                theirs.term !== mine.term ||
                theirs.kind !== mine.kind ||
                !equalBytes(theirs.contentHash, mine.contentHash)
              ) {
                disagreements.push({ peerId: m.peerId, member: nameOf(m.peerId), index: theirs.index, mine, theirs })
                break
              }
            }
            if (answered.length >= need) finish()
          })
          .catch(() => {
            /* unreachable or malformed: not an answer */
          })
          .finally(() => {
            pending--
            if (pending === 0) finish()
          })
      }
      if (others.length === 0) finish()
    })
  }
}

function describe(d: Disagreement): string {
  return `${d.member} holds another board entry at index ${d.index} than mine: ${KIND_NAMES[d.theirs.kind] ?? 'an entry'} of term ${d.theirs.term} (content ${toHex(d.theirs.contentHash).slice(0, 16)}), where I hold ${KIND_NAMES[d.mine.kind] ?? 'an entry'} of term ${d.mine.term} (content ${toHex(d.mine.contentHash).slice(0, 16)})`
}
