import assert, { AssertionError } from 'node:assert/strict'
import { compareBytes, equalBytes, toHex } from '../protocol/bytes.js'
import {
  describePoolRef,
  encodePoolRef,
  equalPoolRefs,
  indexOfKey,
  outpointKey,
  short,
  sumSats,
  type Outpoint,
  type PoolRef,
  type StateRef
} from '../protocol/common.js'
import { kickoutContinuation } from '../protocol/continuation.js'
import { evidenceId, findEquivocations, verifyEvidence, type EquivocationEvidence } from '../protocol/evidence.js'
import { poolIdOf, type Genesis } from '../protocol/genesis.js'
import {
  LOCKTIME_THRESHOLD,
  MAX_EVIDENCE_PER_MEMBER,
  MAX_KICKOUT_DELAY_BLOCKS,
  MAX_MEMBERS,
  MAX_REASON_CHARS
} from '../protocol/limits.js'
import { initialState, RuleError } from '../protocol/rules.js'
import {
  encodeState,
  equalPools,
  stateHashAndOutpoints,
  withdrawOutpoints,
  type PoolState,
  type SignedState
} from '../protocol/state.js'
import {
  conflictingOutpoints,
  partitionInitialState,
  statementId,
  verifyStatement,
  type PartitionStatement
} from '../protocol/statement.js'
import { txid, type Tx } from '../protocol/tx.js'
import { decodeBoardEntry, MAX_BLOCKS_PER_ENTRY, type BoardEntryKind, type KickoutRequest } from './entries.js'
import type { Entry } from './raft/index.js'
import { SignatureCache } from './signature-cache.js'

// ---- limits ----

/** Highest simulated chain height: any T up to it keeps T + X below the locktime threshold for every X. */
export const MAX_CHAIN_HEIGHT = LOCKTIME_THRESHOLD - 1 - MAX_KICKOUT_DELAY_BLOCKS
/**
 * Default retention: per-entry results, and records of rejected statements, kept (the oldest are
 * forgotten first; the log itself keeps everything, and accepted statements are all kept). No
 * decision depends on a forgotten record, so retention is a node's own choice.
 */
export const DEFAULT_RESULTS_KEPT = 10_000
export const DEFAULT_REJECTED_STATEMENTS_KEPT = 10_000
/** Largest retention a node may configure. */
export const MAX_RETENTION = 10_000_000
export { MAX_EVIDENCE_PER_MEMBER, MAX_REASON_CHARS } from '../protocol/limits.js'
/** Most outpoints one `conflictsFor` query may ask about. */
export const MAX_CONFLICT_QUERY_OUTPOINTS = 4 * MAX_MEMBERS

// ---- records ----

export type PoolStatus = 'open' | 'frozen' | 'closed' | 'merged'

/**
 * What merging a frozen pool back together would make, or why it cannot be merged now:
 * `balances` are each member's balance where its funds are now, `folded` the pools under it
 * (partitions, partitions of those, ...) that the merge closes, in the order they were made.
 */
export type Fold = { ok: true; state: PoolState; balances: bigint[]; folded: PoolRef[] } | { ok: false; reason: string }

/**
 * Why a pool's current state is final:
 * - `signatures`: every member of the pool signed it (genesis state 0, and every update);
 * - `statement`: a partition's state 0, signed by the accepted statement that created it;
 * - `kickout`: a continuation's state 0, implied by the parent's signed state and the confirmed
 *   kick-out Withdraw (`kickoutTxid`).
 */
export type StateProof =
  | { kind: 'signatures'; signatures: Uint8Array[] }
  | { kind: 'statement'; statementId: Uint8Array }
  | { kind: 'kickout'; kickoutTxid: Uint8Array }

export interface PoolRecord {
  state: PoolState
  proof: StateProof
  /**
   * open: takes updates, partitions and kick-outs; frozen: its current state was partitioned;
   * closed: kicked out of; merged: folded back into the pool above it (`updatedAt` is the merge).
   */
  status: PoolStatus
  /** Board index of the entry that created the pool, and of the one that last changed this record. */
  createdAt: number
  updatedAt: number
  /** For a closed pool: the txid of the kick-out Withdraw that closed it. */
  closedBy: Uint8Array | null
}

export type StatementStatus = 'accepted' | 'rejected'

export interface StatementRecord {
  id: Uint8Array
  status: StatementStatus
  /** Board index of the (latest) entry that carried it. */
  index: number
  /** Why it was rejected ('' when accepted). */
  reason: string
  /** The accepted statement it conflicts with, if that is why it was rejected. */
  conflictsWith: Uint8Array | null
  /** Evidence its rejection produced. */
  evidenceIds: Uint8Array[]
  parent: StateRef
  /** The complete statement (accepted ones only: later conflicts are checked against it). */
  statement: PartitionStatement | null
}

export type EvidenceSource = 'conflict' | 'entry'

export interface EvidenceRecord {
  id: Uint8Array
  evidence: EquivocationEvidence
  /** Board index of the entry it came with. */
  index: number
  /** Produced by the board from a conflicting statement, or proposed as an evidence entry. */
  source: EvidenceSource
}

/** A kick-out Withdraw K(N,u) confirmed on the simulated chain. */
export interface KickoutRecord {
  txid: Uint8Array
  tx: Tx
  pool: PoolRef
  stateNumber: number
  member: Uint8Array
  memberIndex: number
  /** The evicted balance, paid to the member on chain (output 0). */
  exitSats: bigint
  /** Chain height of the block that confirmed it. */
  height: number
  index: number
  /** The pool that continues without the member, or null if nothing remained. */
  continuation: PoolRef | null
}

export interface BoardMeta {
  /** Index of the last entry applied. */
  appliedIndex: number
  /** Height of the simulated chain, carried by the board so that every node agrees on it. */
  chainHeight: number
  /** The pool the board holds (null before the first valid genesis). */
  genesis: Genesis | null
}

export type ApplyOutcome = 'accepted' | 'rejected' | 'ignored'

/** What applying one entry did. Ids that do not apply are null (or empty). */
export interface ApplyResult {
  index: number
  kind: BoardEntryKind
  outcome: ApplyOutcome
  /** Why it was rejected or ignored ('' when accepted). */
  reason: string
  /** The (sub-)pool the entry is about, and the state number it made or named. */
  pool: PoolRef | null
  stateNumber: number | null
  statementId: Uint8Array | null
  conflictsWith: Uint8Array | null
  /** Evidence recorded because of this entry. */
  evidenceIds: Uint8Array[]
  /** The partition or continuation the entry created. */
  createdPool: PoolRef | null
  /** The kick-out Withdraw the entry confirmed. */
  txid: Uint8Array | null
  /** Chain height after a blocks entry; the kick height of a kick-out. */
  height: number | null
}

/** One change to the board's state, in the order made; the store turns each into a write. */
export type PoolBoardChange =
  | { type: 'meta'; meta: BoardMeta }
  | { type: 'pool'; record: PoolRecord }
  | { type: 'spent'; outpoint: Outpoint; statementId: Uint8Array }
  | { type: 'statement'; record: StatementRecord }
  | { type: 'statement-forgotten'; id: Uint8Array }
  | { type: 'evidence'; record: EvidenceRecord }
  | { type: 'kickout'; record: KickoutRecord }
  | { type: 'result'; result: ApplyResult }
  | { type: 'result-forgotten'; index: number }

export interface Applied {
  result: ApplyResult
  changes: PoolBoardChange[]
}

/** Everything the board holds, as records: what the store writes and `PoolBoard.restore` reads. */
export interface PoolBoardSnapshot {
  meta: BoardMeta
  /** Sorted by the pool reference's encoding. */
  pools: PoolRecord[]
  /** Sorted by outpoint (txid, then vout). */
  spent: Array<{ outpoint: Outpoint; statementId: Uint8Array }>
  /** Sorted by id. */
  statements: StatementRecord[]
  /** Sorted by id. */
  evidence: EvidenceRecord[]
  /** Sorted by board index. */
  kickouts: KickoutRecord[]
  /** Sorted by board index. */
  results: ApplyResult[]
}

// ---- views ----

export interface MemberView {
  key: Uint8Array
  balanceSats: bigint
  /** The accepted statement that moved this balance into a partition, if any. */
  partitionedBy: Uint8Array | null
}

export interface PoolView {
  ref: PoolRef
  status: PoolStatus
  stateNumber: number
  heightT: number
  totalSats: bigint
  members: MemberView[]
  proof: StateProof['kind']
  /** The state this pool was made from (null for the root pool). */
  parent: StateRef | null
  closedBy: Uint8Array | null
}

export interface PoolTreeNode {
  pool: PoolView
  /** Partitions of this pool and its continuation, in the order they were made. */
  children: PoolTreeNode[]
}

export interface PoolBoardOptions {
  /** Shared with gossip so that a signature is verified once per node. */
  signatureCache?: SignatureCache
  /** Per-entry results kept (default `DEFAULT_RESULTS_KEPT`). */
  resultsKept?: number
  /** Rejected statement records kept (default `DEFAULT_REJECTED_STATEMENTS_KEPT`). */
  rejectedStatementsKept?: number
}

/** A rejection: the entry leaves no trace but its result. */
class Refusal extends Error {}

function refuse(reason: string): never {
  throw new Refusal(reason)
}

const EMPTY_META: BoardMeta = { appliedIndex: 0, chainHeight: 0, genesis: null }

interface PoolSlot {
  record: PoolRecord
  /** `user_balance` outpoints of W(N,u) of the current state, by member index (derived, not stored). */
  outpoints: Outpoint[]
}

/**
 * The board's pool state machine. Every node applies the committed entries, in log order, to one
 * of these; it trusts nobody, the leader included: every signature is verified here. It is pure:
 * no I/O, clock or randomness, so the same log gives the same state on every node, and a member
 * that was offline catches up by catching up the log.
 *
 * `apply` never throws for a bad entry: an entry that is malformed or breaks a rule is recorded as
 * rejected, with the reason. It throws only when an invariant of the board itself is broken.
 *
 * Objects returned by the accessors are the board's own: do not modify them.
 */
export class PoolBoard {
  private meta: BoardMeta = EMPTY_META
  private readonly pools = new Map<string, PoolSlot>()
  /** Children of each pool (partitions and continuation), by pool key, in creation order. */
  private readonly children = new Map<string, PoolRef[]>()
  /** Outpoint → id of the accepted statement that spends it. */
  private readonly spent = new Map<string, { outpoint: Outpoint; statementId: Uint8Array }>()
  private readonly statements = new Map<string, StatementRecord>()
  /** Rejected statement ids, oldest first (their records are forgotten in this order). */
  private readonly rejectedOrder = new Set<string>()
  private readonly evidenceById = new Map<string, EvidenceRecord>()
  private readonly evidenceCount = new Map<string, number>()
  private readonly kickoutsByTxid = new Map<string, KickoutRecord>()
  private readonly results = new Map<number, ApplyResult>()
  readonly signatureCache: SignatureCache
  /** The pool id, hashed once (a genesis encoding may be tens of kilobytes). */
  private poolIdMemo: { genesis: Genesis; id: Uint8Array } | null = null

  private readonly resultsKept: number
  private readonly rejectedStatementsKept: number

  constructor(options: PoolBoardOptions = {}) {
    this.signatureCache = options.signatureCache ?? new SignatureCache()
    this.resultsKept = options.resultsKept ?? DEFAULT_RESULTS_KEPT
    this.rejectedStatementsKept = options.rejectedStatementsKept ?? DEFAULT_REJECTED_STATEMENTS_KEPT
    for (const [name, n] of [
      ['resultsKept', this.resultsKept],
      ['rejectedStatementsKept', this.rejectedStatementsKept]
    ] as const) {
      assert(
        Number.isInteger(n) && n >= 1 && n <= MAX_RETENTION,
        `${name} must be within 1..${MAX_RETENTION}, got ${n}`
      )
    }
  }

  // ---- applying entries ----

  /** Applies the committed entry that follows the last one applied. */
  apply(entry: Entry): Applied {
    assert(
      Number.isSafeInteger(entry.index) && entry.index > this.meta.appliedIndex,
      `entry ${entry.index} applied after entry ${this.meta.appliedIndex}`
    )
    const changes: PoolBoardChange[] = []
    const decoded = decodeBoardEntry(entry)
    const base: ApplyResult = {
      index: entry.index,
      kind: decoded.kind,
      outcome: 'accepted',
      reason: '',
      pool: null,
      stateNumber: null,
      statementId: null,
      conflictsWith: null,
      evidenceIds: [],
      createdPool: null,
      txid: null,
      height: null
    }
    let result: ApplyResult
    try {
      switch (decoded.kind) {
        case 'noop':
          result = { ...base, outcome: 'ignored', reason: "a leader's no-op entry" }
          break
        case 'config':
          result = { ...base, outcome: 'ignored', reason: 'a membership change of the board' }
          break
        case 'raw':
          result = { ...base, outcome: 'ignored', reason: 'an opaque lab entry' }
          break
        case 'unknown':
          result = { ...base, outcome: 'rejected', reason: decoded.reason }
          break
        case 'genesis':
          result = this.applyGenesis(base, decoded.genesis, decoded.signed, changes)
          break
        case 'state':
          result = this.applyState(base, decoded.signed, changes)
          break
        case 'statement':
          result = this.applyStatement(base, decoded.statement, changes)
          break
        case 'evidence':
          result = this.applyEvidence(base, decoded.evidence, changes)
          break
        case 'blocks':
          result = this.applyBlocks(base, decoded.count, changes)
          break
        case 'kickout':
          result = this.applyKickout(base, decoded.request, changes)
          break
        case 'merge':
          result = this.applyMerge(base, decoded.signed, changes)
          break
      }
    } catch (err) {
      if (err instanceof AssertionError) throw err
      // A handler changes nothing before its last check, so a rejection leaves no partial state.
      assert(changes.length === 0, `a rejected ${decoded.kind} entry changed the board`)
      const reason =
        err instanceof Refusal || err instanceof RuleError
          ? err.message
          : `${(err as Error).name}: ${(err as Error).message}`
      result = { ...base, outcome: 'rejected', reason }
    }
    result = { ...result, reason: clip(result.reason) }
    this.putResult(result, changes)
    this.trimStatements(changes)
    this.trimResults(changes)
    this.putMeta({ ...this.meta, appliedIndex: entry.index }, changes)
    return { result, changes }
  }

  private applyGenesis(
    base: ApplyResult,
    genesis: Genesis,
    signed: SignedState,
    changes: PoolBoardChange[]
  ): ApplyResult {
    const poolId = poolIdOf(genesis)
    if (this.meta.genesis !== null)
      refuse(
        `the board already holds pool ${short(this.idOf(this.meta.genesis))}; a second genesis (pool ${short(poolId)}) is refused`
      )
    const expected = initialState(genesis)
    if (!equalBytes(encodeState(signed.state), encodeState(expected))) {
      refuse(`the signed state is not state 0 of this genesis: ${stateMismatch(expected, signed.state)}`)
    }
    const outpoints = this.checkStateSignatures(signed, 'state 0')
    const index = base.index
    this.putMeta(
      { ...this.meta, genesis, chainHeight: Math.max(this.meta.chainHeight, genesis.creationHeight) },
      changes
    )
    this.putPool(
      {
        state: signed.state,
        proof: { kind: 'signatures', signatures: signed.signatures },
        status: 'open',
        createdAt: index,
        updatedAt: index,
        closedBy: null
      },
      changes,
      outpoints
    )
    return { ...base, pool: { kind: 'root' }, stateNumber: 0 }
  }

  private applyState(base: ApplyResult, signed: SignedState, changes: PoolBoardChange[]): ApplyResult {
    const next = signed.state
    const slot = this.openSlot(next.pool.poolId, next.pool.ref, 'update')
    const current = slot.record.state
    const what = describePoolRef(current.pool.ref)
    if (!equalPools(current.pool, next.pool))
      refuse(`the state is for another ${what}: members, funding, total or kick-out delay differ`)
    if (next.stateNumber !== current.stateNumber + 1) {
      refuse(`state number of the ${what}: expected ${current.stateNumber + 1}, got ${next.stateNumber}`)
    }
    if (next.heightT < current.heightT)
      refuse(`heightT ${next.heightT} is before the current state's height ${current.heightT}`)
    if (next.heightT > this.meta.chainHeight)
      refuse(`heightT ${next.heightT} is above the chain height ${this.meta.chainHeight}`)
    // The decoder holds a state's balances to its pool's total, and the pools are equal.
    assert(sumSats(next.balances) === current.pool.totalSats, "a decoded state conserves its pool's total")
    const outpoints = this.checkStateSignatures(signed, `state ${next.stateNumber} of the ${what}`)
    this.putPool(
      {
        ...slot.record,
        state: next,
        proof: { kind: 'signatures', signatures: signed.signatures },
        updatedAt: base.index
      },
      changes,
      outpoints
    )
    return { ...base, pool: next.pool.ref, stateNumber: next.stateNumber }
  }

  private applyStatement(base: ApplyResult, stmt: PartitionStatement, changes: PoolBoardChange[]): ApplyResult {
    const genesis = this.requireGenesis()
    const id = statementId(stmt)
    const idHex = toHex(id)
    const result = { ...base, statementId: id, pool: stmt.parent.pool, stateNumber: stmt.parent.stateNumber }
    const rejectedRecord = (
      reason: string,
      conflictsWith: Uint8Array | null,
      evidenceIds: Uint8Array[]
    ): StatementRecord => ({
      id,
      status: 'rejected',
      index: base.index,
      reason: clip(reason),
      conflictsWith,
      evidenceIds,
      parent: stmt.parent,
      statement: null
    })
    try {
      if (!equalBytes(stmt.poolId, this.idOf(genesis)))
        refuse(`the statement is for pool ${short(stmt.poolId)}, the board holds pool ${short(this.idOf(genesis))}`)
      const earlier = this.statements.get(idHex)
      if (earlier?.status === 'accepted')
        refuse(`statement ${short(id)} is already on the board (accepted at index ${earlier.index})`)
    } catch (err) {
      if (!(err instanceof Refusal)) throw err
      // Not a fact about the pool: keep no record of the statement, only the entry's result.
      return { ...result, outcome: 'rejected', reason: err.message }
    }

    // The first committed statement on an outpoint wins; a later one is refused and convicts
    // every member who signed both.
    const conflicts = this.conflictsFor(stmt.spent)
    if (conflicts.length > 0) {
      const first = conflicts[0]
      assert(first.statement !== null)
      const common = conflictingOutpoints(first.statement, stmt)[0]
      assert(common !== undefined, 'a statement on the spent index must share an outpoint')
      const evidence: EquivocationEvidence[] = []
      for (const accepted of conflicts) {
        assert(accepted.statement !== null)
        evidence.push(...findEquivocations(accepted.statement, stmt, this.signatureCache.verifier))
      }
      const reason =
        `conflicts with statement ${short(first.id)} (accepted at index ${first.index}): both spend outpoint ${outpointKey(common)}` +
        (conflicts.length > 1 ? ` (and ${conflicts.length - 1} more accepted statements)` : '') +
        (evidence.length > 0
          ? `; equivocation by ${[...new Set(evidence.map((e) => short(e.member)))].join(', ')}`
          : '')
      const evidenceIds = this.recordEvidence(evidence, base.index, 'conflict', changes)
      this.putStatement(rejectedRecord(reason, first.id, evidenceIds), changes)
      return { ...result, outcome: 'rejected', reason, conflictsWith: first.id, evidenceIds }
    }

    let parent: PoolSlot
    try {
      parent = this.openSlot(stmt.poolId, stmt.parent.pool, 'partition', true)
      const current = parent.record.state
      const what = describePoolRef(current.pool.ref)
      if (stmt.parent.stateNumber < current.stateNumber) {
        refuse(
          `stale: the statement partitions state ${stmt.parent.stateNumber} of the ${what}, whose current state is ${current.stateNumber}`
        )
      }
      if (stmt.parent.stateNumber > current.stateNumber) {
        refuse(
          `the statement partitions state ${stmt.parent.stateNumber} of the ${what}, which is only at state ${current.stateNumber}`
        )
      }
      if (stmt.heightT > this.meta.chainHeight)
        refuse(`heightT ${stmt.heightT} is above the chain height ${this.meta.chainHeight}`)
      // Against the parent, then complete, then every signature (through the cache).
      // Entries reach apply() only through decodeBoardEntry, whose decoder accepts only well-formed statements.
      const v = verifyStatement(stmt, {
        parent: current,
        parentOutpoints: parent.outpoints,
        verify: this.signatureCache.verifier,
        decoded: { statementId: id }
      })
      if (!v.ok) refuse(v.reason)
    } catch (err) {
      if (!(err instanceof Refusal || err instanceof RuleError || err instanceof RangeError)) throw err
      this.putStatement(rejectedRecord(err.message, null, []), changes)
      return { ...result, outcome: 'rejected', reason: err.message }
    }

    // Accepted: the outpoints are spent, the sub-pool exists, and the parent is frozen at this state.
    const sub = partitionInitialState(parent.record.state.pool, stmt)
    const memberOf = new Map(parent.outpoints.map((o, i) => [outpointKey(o), i]))
    const spentSum = sumSats(stmt.spent.map((o) => parent.record.state.balances[memberOf.get(outpointKey(o)) ?? -1]))
    assert(spentSum === sub.pool.totalSats, 'a partition must hold exactly the balances it spends')
    this.putStatement(
      {
        id,
        status: 'accepted',
        index: base.index,
        reason: '',
        conflictsWith: null,
        evidenceIds: [],
        parent: stmt.parent,
        statement: stmt
      },
      changes
    )
    for (const outpoint of stmt.spent) this.putSpent(outpoint, id, changes)
    if (parent.record.status === 'open')
      this.putPool({ ...parent.record, status: 'frozen', updatedAt: base.index }, changes)
    this.putPool(
      {
        state: sub,
        proof: { kind: 'statement', statementId: id },
        status: 'open',
        createdAt: base.index,
        updatedAt: base.index,
        closedBy: null
      },
      changes
    )
    return { ...result, createdPool: sub.pool.ref }
  }

  private applyEvidence(base: ApplyResult, ev: EquivocationEvidence, changes: PoolBoardChange[]): ApplyResult {
    const genesis = this.requireGenesis()
    const poolId = this.idOf(genesis)
    const id = evidenceId(ev)
    const known = this.evidenceById.get(toHex(id))
    if (known !== undefined) refuse(`evidence ${short(id)} is already recorded (index ${known.index})`)
    if (
      indexOfKey(
        genesis.members.map((m) => m.key),
        ev.member
      ) < 0
    )
      refuse(`${short(ev.member)} is not a member of the pool`)
    const v = verifyEvidence(ev, poolId, this.signatureCache.verifier)
    if (!v.ok) refuse(v.reason)
    const count = this.evidenceCount.get(toHex(ev.member)) ?? 0
    if (count >= MAX_EVIDENCE_PER_MEMBER)
      refuse(`member ${short(ev.member)} is already proven to equivocate by ${count} pieces of evidence`)
    const ids = this.recordEvidence([ev], base.index, 'entry', changes)
    assert(ids.length === 1)
    return { ...base, evidenceIds: ids }
  }

  private applyBlocks(base: ApplyResult, count: number, changes: PoolBoardChange[]): ApplyResult {
    if (!Number.isInteger(count) || count < 1 || count > MAX_BLOCKS_PER_ENTRY)
      refuse(`block count ${count} is not within 1..${MAX_BLOCKS_PER_ENTRY}`)
    const height = this.meta.chainHeight + count
    if (height > MAX_CHAIN_HEIGHT) refuse(`the chain would reach height ${height}, above the limit ${MAX_CHAIN_HEIGHT}`)
    this.putMeta({ ...this.meta, chainHeight: height }, changes)
    return { ...base, height }
  }

  private applyKickout(base: ApplyResult, req: KickoutRequest, changes: PoolBoardChange[]): ApplyResult {
    const genesis = this.requireGenesis()
    const slot = this.openSlot(this.idOf(genesis), req.pool, 'kick-out')
    const state = slot.record.state
    const what = describePoolRef(state.pool.ref)
    if (req.stateNumber !== state.stateNumber)
      refuse(`the kick-out names state ${req.stateNumber} of the ${what}, whose current state is ${state.stateNumber}`)
    const height = this.meta.chainHeight
    // Refuses (RuleError) a non-member, and a kick-out not yet valid at the chain's height.
    const c = kickoutContinuation(state, req.member, height)
    const id = txid(c.kickout.tx)
    const continuation = c.pool === null ? null : c.pool.ref
    assert(c.exitSats + (c.pool?.totalSats ?? 0n) === state.pool.totalSats, 'a kick-out must conserve value')
    this.putKickout(
      {
        txid: id,
        tx: c.kickout.tx,
        pool: state.pool.ref,
        stateNumber: state.stateNumber,
        member: new Uint8Array(req.member),
        memberIndex: c.evictedIndex,
        exitSats: c.exitSats,
        height,
        index: base.index,
        continuation
      },
      changes
    )
    this.putPool({ ...slot.record, status: 'closed', closedBy: id, updatedAt: base.index }, changes)
    if (c.state !== null) {
      this.putPool(
        {
          state: c.state,
          proof: { kind: 'kickout', kickoutTxid: id },
          status: 'open',
          createdAt: base.index,
          updatedAt: base.index,
          closedBy: null
        },
        changes
      )
    }
    return {
      ...base,
      pool: state.pool.ref,
      stateNumber: state.stateNumber,
      txid: id,
      createdPool: continuation,
      height
    }
  }

  private applyMerge(base: ApplyResult, signed: SignedState, changes: PoolBoardChange[]): ApplyResult {
    const genesis = this.requireGenesis()
    const next = signed.state
    if (!equalBytes(next.pool.poolId, this.idOf(genesis)))
      refuse(`the merge is for pool ${short(next.pool.poolId)}, the board holds pool ${short(this.idOf(genesis))}`)
    const fold = this.foldPartitions(next.pool.ref)
    if (!fold.ok) refuse(fold.reason)
    const current = fold.state
    const what = describePoolRef(current.pool.ref)
    if (!equalPools(current.pool, next.pool))
      refuse(`the merge is for another ${what}: members, funding, total or kick-out delay differ`)
    if (next.stateNumber !== current.stateNumber + 1)
      refuse(`state number of the merged ${what}: expected ${current.stateNumber + 1}, got ${next.stateNumber}`)
    if (next.heightT < current.heightT)
      refuse(`heightT ${next.heightT} is before the current state's height ${current.heightT}`)
    if (next.heightT > this.meta.chainHeight)
      refuse(`heightT ${next.heightT} is above the chain height ${this.meta.chainHeight}`)
    for (let i = 0; i < fold.balances.length; i++) {
      if (next.balances[i] !== fold.balances[i]) {
        refuse(
          `the merge gives member ${i} (${short(current.pool.members[i])}) ${next.balances[i]} sats, but its funds under the ${what} are ${fold.balances[i]} sats`
        )
      }
    }
    const outpoints = this.checkStateSignatures(signed, `merged state ${next.stateNumber} of the ${what}`)
    const slot = this.pools.get(refKey(current.pool.ref))
    assert(slot !== undefined && slot.record.status === 'frozen', 'a fold starts from a frozen pool')
    // The new state supersedes the partitioned one: every pool under it is closed for good.
    for (const ref of fold.folded) {
      const under = this.pools.get(refKey(ref))
      assert(
        under !== undefined && (under.record.status === 'open' || under.record.status === 'frozen'),
        'a fold goes through open and frozen pools only'
      )
      this.putPool({ ...under.record, status: 'merged', updatedAt: base.index }, changes)
    }
    this.putPool(
      {
        ...slot.record,
        state: next,
        proof: { kind: 'signatures', signatures: signed.signatures },
        status: 'open',
        updatedAt: base.index
      },
      changes,
      outpoints
    )
    return { ...base, pool: next.pool.ref, stateNumber: next.stateNumber }
  }

  // ---- checks ----

  private idOf(genesis: Genesis): Uint8Array {
    if (this.poolIdMemo?.genesis !== genesis) this.poolIdMemo = { genesis, id: poolIdOf(genesis) }
    return this.poolIdMemo.id
  }

  private requireGenesis(): Genesis {
    if (this.meta.genesis === null)
      refuse('the board holds no pool yet: the first entry about it must be a valid genesis')
    return this.meta.genesis
  }

  /**
   * What merging the frozen pool `ref` back together would make now (see `Fold`): each member's
   * funds are followed down from its Withdraw output of the frozen state through the statements
   * that spent it, to the pool where they are now. Refused when the pool is not frozen, or when a
   * kick-out closed a pool under it (those funds left on chain, so the total cannot come back).
   */
  foldPartitions(ref: PoolRef): Fold {
    const top = this.pools.get(refKey(ref))
    const what = describePoolRef(ref)
    if (top === undefined) return { ok: false, reason: `unknown pool: the board holds no ${what}` }
    if (top.record.status !== 'frozen') {
      return {
        ok: false,
        reason: `the ${what} is ${top.record.status}: only a frozen pool (one whose state was partitioned) can be merged`
      }
    }
    const members = top.record.state.pool.members
    const balances: bigint[] = []
    const folded = new Map<string, PoolSlot>()
    for (let i = 0; i < members.length; i++) {
      let slot = top
      let index = i
      // Each step goes one partition down; a pool holds at most as many pools under it as the board does.
      for (let steps = 0; ; steps++) {
        assert(steps <= this.pools.size, "a member's funds are followed through each pool once")
        const hit = this.spent.get(outpointKey(slot.outpoints[index]))
        if (hit === undefined) break
        const child = this.pools.get(refKey({ kind: 'partition', statementId: hit.statementId }))
        assert(child !== undefined, 'an accepted statement has its sub-pool')
        const status = child.record.status
        if (status === 'closed') {
          const k = child.record.closedBy === null ? undefined : this.kickoutsByTxid.get(toHex(child.record.closedBy))
          return {
            ok: false,
            reason:
              `the ${describePoolRef(child.record.state.pool.ref)} under the ${what} is closed: member ${k?.memberIndex ?? '?'} (${k === undefined ? '?' : short(k.member)}) was kicked out of it at index ${k?.index ?? '?'}, ` +
              "and its funds left on chain, so the pool's total cannot be folded back"
          }
        }
        assert(status === 'open' || status === 'frozen', 'a pool under a frozen one is open, frozen or closed')
        index = indexOfKey(child.record.state.pool.members, members[i])
        assert(index >= 0, "a partition's members are its actives")
        folded.set(refKey(child.record.state.pool.ref), child)
        slot = child
      }
      balances.push(slot.record.state.balances[index])
    }
    assert(sumSats(balances) === top.record.state.pool.totalSats, 'partitions conserve what they spent')
    const order = [...folded.values()].sort((a, b) => a.record.createdAt - b.record.createdAt)
    return { ok: true, state: top.record.state, balances, folded: order.map((s) => s.record.state.pool.ref) }
  }

  /** The pool `ref` of pool `poolId`, refusing unless it exists and can take `action` (`allowFrozen` for partitions). */
  private openSlot(poolId: Uint8Array, ref: PoolRef, action: string, allowFrozen = false): PoolSlot {
    const genesis = this.requireGenesis()
    const boardPoolId = this.idOf(genesis)
    if (!equalBytes(poolId, boardPoolId))
      refuse(`the ${action} is for pool ${short(poolId)}, the board holds pool ${short(boardPoolId)}`)
    const slot = this.pools.get(refKey(ref))
    if (slot === undefined) refuse(`unknown pool: the board holds no ${describePoolRef(ref)}`)
    const what = describePoolRef(ref)
    const { record } = slot
    if (record.status === 'closed') {
      const k = record.closedBy === null ? undefined : this.kickoutsByTxid.get(toHex(record.closedBy))
      assert(k !== undefined, 'a closed pool names the kick-out that closed it')
      const next =
        k.continuation === null ? 'nothing of it continues' : `it continues as the ${describePoolRef(k.continuation)}`
      refuse(
        `the ${what} is closed: member ${k.memberIndex} (${short(k.member)}) was kicked out at state ${k.stateNumber} (index ${k.index}); ${next}`
      )
    }
    if (record.status === 'merged') {
      const parent = parentOf(record, (id) => this.statements.get(toHex(id)))
      refuse(
        `the ${what} was merged back into the ${parent === null ? 'pool above it' : describePoolRef(parent.pool)} at index ${record.updatedAt}: its members go on there`
      )
    }
    if (record.status === 'frozen' && !allowFrozen) {
      const by = this.partitionsOf(record.state).map((s) => `${short(s.id)} (index ${s.index})`)
      refuse(
        `the ${what} is frozen: its state ${record.state.stateNumber} was partitioned by statement ${by.join(', ')}; ` +
          'a new state would drop those partitions: merge them back first, once every member under it is online (a merge entry)'
      )
    }
    return slot
  }

  /**
   * Refuses unless every member of the state's pool signed it, naming the first who did not.
   * Returns the state's W(N,u) outpoints (built with its state hash, for the pool's slot).
   */
  private checkStateSignatures(signed: SignedState, what: string): Outpoint[] {
    const members = signed.state.pool.members
    if (signed.signatures.length !== members.length)
      refuse(`${what}: expected ${members.length} signatures (one per member), got ${signed.signatures.length}`)
    const { hash, outpoints } = stateHashAndOutpoints(signed.state)
    for (let i = 0; i < members.length; i++) {
      if (!this.signatureCache.verify(signed.signatures[i], hash, members[i]))
        refuse(`${what}: the signature of member ${i} (${short(members[i])}) does not verify`)
    }
    return outpoints
  }

  private recordEvidence(
    list: readonly EquivocationEvidence[],
    index: number,
    source: EvidenceSource,
    changes: PoolBoardChange[]
  ): Uint8Array[] {
    const ids: Uint8Array[] = []
    for (const evidence of list) {
      const id = evidenceId(evidence)
      if (this.evidenceById.has(toHex(id))) continue
      if ((this.evidenceCount.get(toHex(evidence.member)) ?? 0) >= MAX_EVIDENCE_PER_MEMBER) continue
      this.putEvidence({ id, evidence, index, source }, changes)
      ids.push(id)
    }
    return ids
  }

  // ---- mutations (each records its change) ----

  private putMeta(meta: BoardMeta, changes: PoolBoardChange[]): void {
    assert(meta.chainHeight >= this.meta.chainHeight, 'the chain height never goes back')
    this.meta = meta
    changes.push({ type: 'meta', meta })
  }

  /** `outpoints`: `withdrawOutpoints(record.state)`, when the caller already built them. */
  private putPool(record: PoolRecord, changes: PoolBoardChange[], outpoints?: Outpoint[]): void {
    this.installPool(record, outpoints)
    changes.push({ type: 'pool', record })
  }

  private installPool(record: PoolRecord, known?: Outpoint[]): void {
    const key = refKey(record.state.pool.ref)
    const old = this.pools.get(key)
    assert(known === undefined || known.length === record.state.pool.members.length)
    const outpoints =
      known ??
      (old !== undefined && old.record.state === record.state ? old.outpoints : withdrawOutpoints(record.state))
    if (old === undefined) {
      const parent = parentOf(record, (id) => this.statements.get(toHex(id)))
      if (parent !== null) {
        const siblings = this.children.get(refKey(parent.pool)) ?? []
        siblings.push(record.state.pool.ref)
        this.children.set(refKey(parent.pool), siblings)
      }
    }
    this.pools.set(key, { record, outpoints })
  }

  private putSpent(outpoint: Outpoint, id: Uint8Array, changes: PoolBoardChange[]): void {
    const key = outpointKey(outpoint)
    assert(!this.spent.has(key), `outpoint ${key} is spent twice`)
    this.spent.set(key, { outpoint, statementId: id })
    changes.push({ type: 'spent', outpoint, statementId: id })
  }

  private putStatement(record: StatementRecord, changes: PoolBoardChange[]): void {
    const key = toHex(record.id)
    assert(this.statements.get(key)?.status !== 'accepted', `statement ${key} was already accepted`)
    this.statements.set(key, record)
    this.rejectedOrder.delete(key)
    changes.push({ type: 'statement', record })
    if (record.status === 'rejected') this.rejectedOrder.add(key)
  }

  /** Forgets the oldest rejected statement records beyond this node's retention. */
  private trimStatements(changes: PoolBoardChange[]): void {
    while (this.rejectedOrder.size > this.rejectedStatementsKept) {
      const oldest = this.rejectedOrder.values().next().value
      assert(oldest !== undefined)
      const forgotten = this.statements.get(oldest)
      assert(forgotten !== undefined && forgotten.status === 'rejected')
      this.rejectedOrder.delete(oldest)
      this.statements.delete(oldest)
      changes.push({ type: 'statement-forgotten', id: forgotten.id })
    }
  }

  private putEvidence(record: EvidenceRecord, changes: PoolBoardChange[]): void {
    const key = toHex(record.id)
    assert(!this.evidenceById.has(key))
    this.evidenceById.set(key, record)
    const member = toHex(record.evidence.member)
    this.evidenceCount.set(member, (this.evidenceCount.get(member) ?? 0) + 1)
    changes.push({ type: 'evidence', record })
  }

  private putKickout(record: KickoutRecord, changes: PoolBoardChange[]): void {
    const key = toHex(record.txid)
    assert(!this.kickoutsByTxid.has(key), 'a kick-out Withdraw confirms once')
    this.kickoutsByTxid.set(key, record)
    changes.push({ type: 'kickout', record })
  }

  private putResult(result: ApplyResult, changes: PoolBoardChange[]): void {
    // The Raft core's own entries and lab payloads change nothing here: their results are not kept.
    if (result.outcome === 'ignored') return
    this.results.set(result.index, result)
    changes.push({ type: 'result', result })
  }

  private trimResults(changes: PoolBoardChange[]): void {
    while (this.results.size > this.resultsKept) {
      const oldest = this.results.keys().next().value
      assert(oldest !== undefined)
      this.results.delete(oldest)
      changes.push({ type: 'result-forgotten', index: oldest })
    }
  }

  // ---- reading ----

  /** Index of the last entry applied. */
  get appliedIndex(): number {
    return this.meta.appliedIndex
  }

  /** Height of the simulated chain. */
  get chainHeight(): number {
    return this.meta.chainHeight
  }

  get genesis(): Genesis | null {
    return this.meta.genesis
  }

  get poolId(): Uint8Array | null {
    return this.meta.genesis === null ? null : this.idOf(this.meta.genesis)
  }

  /** The record of a (sub-)pool: its current state, how it is proven, its status. */
  pool(ref: PoolRef): PoolRecord | undefined {
    return this.pools.get(refKey(ref))?.record
  }

  /** The current state of a (sub-)pool. */
  currentState(ref: PoolRef): PoolState | undefined {
    return this.pool(ref)?.state
  }

  /** The current state with every member's signature, when it was made by an update (or the genesis). */
  signedState(ref: PoolRef): SignedState | undefined {
    const record = this.pool(ref)
    if (record === undefined || record.proof.kind !== 'signatures') return undefined
    return { state: record.state, signatures: record.proof.signatures }
  }

  /** Every pool the board knows, in the order they were created. */
  poolList(): PoolView[] {
    return [...this.pools.values()].sort((a, b) => a.record.createdAt - b.record.createdAt).map((s) => this.view(s))
  }

  /** The tree of pools: the root, its partitions and continuations, theirs, and so on. */
  poolTree(): PoolTreeNode | null {
    const root = this.pools.get(refKey({ kind: 'root' }))
    if (root === undefined) return null
    const build = (slot: PoolSlot): PoolTreeNode => ({
      pool: this.view(slot),
      children: (this.children.get(refKey(slot.record.state.pool.ref)) ?? []).map((ref) => {
        const child = this.pools.get(refKey(ref))
        assert(child !== undefined)
        return build(child)
      })
    })
    return build(root)
  }

  private view(slot: PoolSlot): PoolView {
    const { record } = slot
    const s = record.state
    return {
      ref: s.pool.ref,
      status: record.status,
      stateNumber: s.stateNumber,
      heightT: s.heightT,
      totalSats: s.pool.totalSats,
      members: s.pool.members.map((key, i) => ({
        key,
        balanceSats: s.balances[i],
        partitionedBy: this.spent.get(outpointKey(slot.outpoints[i]))?.statementId ?? null
      })),
      proof: record.proof.kind,
      parent: parentOf(record, (id) => this.statements.get(toHex(id))),
      closedBy: record.closedBy
    }
  }

  /**
   * The accepted statements that spend any of `outpoints`, oldest first. The daemon asks this
   * (after a linearizable read) before it signs a partition.
   */
  conflictsFor(outpoints: readonly Outpoint[]): StatementRecord[] {
    if (outpoints.length > MAX_CONFLICT_QUERY_OUTPOINTS)
      throw new RangeError(`conflictsFor: ${outpoints.length} outpoints, at most ${MAX_CONFLICT_QUERY_OUTPOINTS}`)
    const found = new Map<string, StatementRecord>()
    for (const o of outpoints) {
      const hit = this.spent.get(outpointKey(o))
      if (hit === undefined) continue
      const record = this.statements.get(toHex(hit.statementId))
      assert(record !== undefined && record.status === 'accepted', 'the spent index points at accepted statements')
      found.set(toHex(record.id), record)
    }
    return [...found.values()].sort((a, b) => a.index - b.index)
  }

  /** The accepted statement spending `outpoint`, if any. */
  spentBy(outpoint: Outpoint): Uint8Array | undefined {
    return this.spent.get(outpointKey(outpoint))?.statementId
  }

  /** What the board decided about a statement (kept for accepted ones, and the most recent rejected ones). */
  statement(id: Uint8Array): StatementRecord | undefined {
    return this.statements.get(toHex(id))
  }

  /** Accepted statements that partition the given state, oldest first. */
  partitionsOf(state: PoolState): StatementRecord[] {
    return (this.children.get(refKey(state.pool.ref)) ?? [])
      .filter((ref): ref is Extract<PoolRef, { kind: 'partition' }> => ref.kind === 'partition')
      .map((ref) => this.statements.get(toHex(ref.statementId)))
      .filter(
        (s): s is StatementRecord =>
          s !== undefined && s.status === 'accepted' && s.parent.stateNumber === state.stateNumber
      )
  }

  /** Every piece of equivocation evidence, in board order. */
  evidence(): EvidenceRecord[] {
    return [...this.evidenceById.values()].sort((a, b) => a.index - b.index || compareBytes(a.id, b.id))
  }

  /** Member keys proven to equivocate, sorted. */
  equivocators(): Uint8Array[] {
    const keys = new Map<string, Uint8Array>()
    for (const e of this.evidenceById.values()) keys.set(toHex(e.evidence.member), e.evidence.member)
    return [...keys.values()].sort(compareBytes)
  }

  /** Kick-out Withdraws confirmed on the simulated chain, in board order. */
  kickouts(): KickoutRecord[] {
    return [...this.kickoutsByTxid.values()].sort((a, b) => a.index - b.index)
  }

  /** The result of the entry at `index`, if it is among the most recent ones kept. */
  result(index: number): ApplyResult | undefined {
    return this.results.get(index)
  }

  /** Results kept, oldest first. */
  recentResults(): ApplyResult[] {
    return [...this.results.values()]
  }

  /** Value the pools still hold: balances of open and frozen pools that no accepted partition moved. */
  valueHeldSats(): bigint {
    let total = 0n
    for (const slot of this.pools.values()) {
      if (slot.record.status === 'closed' || slot.record.status === 'merged') continue
      slot.record.state.balances.forEach((b, i) => {
        if (!this.spent.has(outpointKey(slot.outpoints[i]))) total += b
      })
    }
    return total
  }

  /** Value that left the pools on chain (confirmed kick-outs). */
  onChainExitSats(): bigint {
    let total = 0n
    for (const k of this.kickoutsByTxid.values()) total += k.exitSats
    return total
  }

  /**
   * Checks that the records agree with one another (used on restore and by tests); throws an
   * Error naming the first disagreement.
   */
  checkConsistency(): void {
    const genesis = this.meta.genesis
    if (genesis === null) {
      if (this.pools.size + this.spent.size + this.evidenceById.size + this.kickoutsByTxid.size > 0)
        fail('pool records without a genesis')
      for (const s of this.statements.values())
        if (s.status === 'accepted') fail('an accepted statement without a genesis')
      return
    }
    const poolId = this.idOf(genesis)
    if (!this.pools.has(refKey({ kind: 'root' }))) fail('the genesis is recorded but not the root pool')
    for (const [key, { record }] of this.pools) {
      const ref = record.state.pool.ref
      const what = describePoolRef(ref)
      if (!equalBytes(record.state.pool.poolId, poolId)) fail(`the ${what} belongs to another pool`)
      if (sumSats(record.state.balances) !== record.state.pool.totalSats)
        fail(`the ${what}'s balances do not sum to its total`)
      if (record.status === 'closed') {
        const k = record.closedBy === null ? undefined : this.kickoutsByTxid.get(toHex(record.closedBy))
        if (k === undefined || !equalPoolRefs(k.pool, ref)) fail(`the ${what} is closed but its kick-out is missing`)
      } else if (record.closedBy !== null) fail(`the ${what} names a kick-out but is not closed`)
      const partitioned = this.partitionsOf(record.state).length > 0
      if (record.status !== 'merged' && partitioned !== (record.status === 'frozen'))
        fail(`the ${what} is ${record.status} but ${partitioned ? 'has' : 'has no'} partitions of its current state`)
      const parent = parentOf(record, (id) => this.statements.get(toHex(id)))
      if (ref.kind !== 'root') {
        if (parent === null) fail(`the ${what} has no accepted statement or kick-out that made it`)
        if (!this.pools.has(refKey(parent.pool))) fail(`the ${what}'s parent is missing`)
        if (!(this.children.get(refKey(parent.pool)) ?? []).some((c) => refKey(c) === key))
          fail(`the ${what} is not among its parent's children`)
      }
      if (record.proof.kind === 'signatures' && record.proof.signatures.length !== record.state.pool.members.length)
        fail(
          `the ${what} has ${record.proof.signatures.length} signatures for ${record.state.pool.members.length} members`
        )
      if (
        record.proof.kind === 'statement' &&
        (ref.kind !== 'partition' ||
          !equalBytes(ref.statementId, record.proof.statementId) ||
          record.state.stateNumber !== 0)
      )
        fail(`the ${what}'s state is not the state 0 of its statement`)
      if (record.proof.kind === 'kickout') {
        const k = this.kickoutsByTxid.get(toHex(record.proof.kickoutTxid))
        if (
          ref.kind !== 'continuation' ||
          record.state.stateNumber !== 0 ||
          k === undefined ||
          k.continuation === null ||
          !equalPoolRefs(k.continuation, ref)
        )
          fail(`the ${what}'s state is not the state 0 of its kick-out`)
      }
    }
    for (const [key, { statementId: id }] of this.spent) {
      const s = this.statements.get(toHex(id))
      if (s === undefined || s.status !== 'accepted' || s.statement === null)
        fail(`outpoint ${key} is spent by statement ${short(id)}, which is not an accepted statement`)
      if (!s.statement.spent.some((o) => outpointKey(o) === key))
        fail(`statement ${short(id)} does not spend outpoint ${key}`)
    }
    for (const s of this.statements.values()) {
      if (s.status === 'accepted') {
        if (s.statement === null || !equalBytes(statementId(s.statement), s.id))
          fail(`accepted statement ${short(s.id)} does not hold itself`)
        for (const o of s.statement.spent)
          if (!equalBytes(this.spent.get(outpointKey(o))?.statementId ?? new Uint8Array(0), s.id))
            fail(`statement ${short(s.id)}'s outpoint ${outpointKey(o)} is not on the spent index`)
        if (!this.pools.has(refKey({ kind: 'partition', statementId: s.id })))
          fail(`accepted statement ${short(s.id)} has no sub-pool`)
      } else if (!this.rejectedOrder.has(toHex(s.id)))
        fail(`rejected statement ${short(s.id)} is not in the order of forgetting`)
    }
    // More records than this node keeps are possible after its retention was lowered: the next applies trim them.
    for (const r of this.results.values())
      if (r.index > this.meta.appliedIndex)
        fail(`a result for entry ${r.index}, after the applied index ${this.meta.appliedIndex}`)
    for (const [member, n] of this.evidenceCount)
      if (n > MAX_EVIDENCE_PER_MEMBER) fail(`${n} pieces of evidence against ${member.slice(0, 16)}`)
    for (const k of this.kickoutsByTxid.values()) {
      if (this.pool(k.pool)?.status !== 'closed') fail(`kick-out ${short(k.txid)}'s pool is not closed`)
      if (k.continuation !== null && this.pool(k.continuation) === undefined)
        fail(`kick-out ${short(k.txid)}'s continuation is missing`)
      if (k.height > this.meta.chainHeight) fail(`kick-out ${short(k.txid)} confirmed above the chain height`)
    }
    const total = sumSats(genesis.balances)
    const accounted = this.valueHeldSats() + this.onChainExitSats()
    if (accounted !== total)
      fail(
        `value is not conserved: pools hold ${this.valueHeldSats()} and ${this.onChainExitSats()} left on chain, the genesis holds ${total}`
      )
  }

  // ---- snapshot and restore ----

  /** Everything the board holds, in a canonical order (what the store writes, and tests compare). */
  snapshot(): PoolBoardSnapshot {
    return {
      meta: this.meta,
      pools: [...this.pools.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s.record),
      spent: [...this.spent.values()].sort(
        (a, b) => compareBytes(a.outpoint.txid, b.outpoint.txid) || a.outpoint.vout - b.outpoint.vout
      ),
      statements: [...this.statements.values()].sort((a, b) => compareBytes(a.id, b.id)),
      evidence: [...this.evidenceById.values()].sort((a, b) => compareBytes(a.id, b.id)),
      kickouts: this.kickouts(),
      results: [...this.results.values()].sort((a, b) => a.index - b.index)
    }
  }

  /**
   * A board holding exactly the given records, as the store read them: no signature is verified
   * again and no entry replayed. Throws an Error if the records do not agree with one another.
   */
  static restore(snapshot: PoolBoardSnapshot, options: PoolBoardOptions = {}): PoolBoard {
    const board = new PoolBoard(options)
    board.meta = snapshot.meta
    for (const s of snapshot.statements) {
      const key = toHex(s.id)
      if (board.statements.has(key)) throw new Error(`inconsistent pool board: statement ${short(s.id)} recorded twice`)
      board.statements.set(key, s)
    }
    for (const s of [...snapshot.statements].filter((x) => x.status === 'rejected').sort((a, b) => a.index - b.index))
      board.rejectedOrder.add(toHex(s.id))
    for (const e of snapshot.spent) board.spent.set(outpointKey(e.outpoint), e)
    for (const e of snapshot.evidence) {
      board.evidenceById.set(toHex(e.id), e)
      const member = toHex(e.evidence.member)
      board.evidenceCount.set(member, (board.evidenceCount.get(member) ?? 0) + 1)
    }
    for (const k of snapshot.kickouts) board.kickoutsByTxid.set(toHex(k.txid), k)
    // Children in creation order, as `apply` made them.
    for (const p of [...snapshot.pools].sort(
      (a, b) =>
        a.createdAt - b.createdAt || compareBytes(encodePoolRef(a.state.pool.ref), encodePoolRef(b.state.pool.ref))
    ))
      board.installPool(p)
    for (const r of snapshot.results) board.results.set(r.index, r)
    board.checkConsistency()
    return board
  }
}

// ---- helpers ----

/** Map key of a pool reference: hex of its canonical encoding. */
export function refKey(ref: PoolRef): string {
  return toHex(encodePoolRef(ref))
}

/** The state a pool was made from: a partition's statement parent, a continuation's kicked state. */
function parentOf(record: PoolRecord, statementById: (id: Uint8Array) => StatementRecord | undefined): StateRef | null {
  const ref = record.state.pool.ref
  if (ref.kind === 'root') return null
  if (ref.kind === 'continuation') return { pool: ref.parent, stateNumber: ref.parentStateNumber }
  return statementById(ref.statementId)?.parent ?? null
}

function fail(message: string): never {
  throw new Error(`inconsistent pool board: ${message}`)
}

function clip(reason: string): string {
  return reason.length <= MAX_REASON_CHARS ? reason : `${reason.slice(0, MAX_REASON_CHARS - 1)}…`
}

function stateMismatch(expected: PoolState, got: PoolState): string {
  if (!equalPools(expected.pool, got.pool)) return 'another pool (id, members, funding, total or kick-out delay differ)'
  if (got.stateNumber !== 0) return `state number ${got.stateNumber}, expected 0`
  if (got.heightT !== expected.heightT)
    return `heightT ${got.heightT}, expected the creation height ${expected.heightT}`
  return 'balances differ from the genesis balances'
}
