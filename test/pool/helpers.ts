/**
 * Helpers for driving a PoolBoard entry by entry with real signatures.
 * Keys are the deterministic test members of the protocol tests.
 */
import assert from 'node:assert/strict'
import {
  encodeBlocksEntry,
  encodeEvidenceEntry,
  encodeGenesisEntry,
  encodeKickoutEntry,
  encodeMergeEntry,
  encodeStateEntry,
  encodeStatementEntry
} from '../../board/entries.js'
import { PoolBoard, type Applied } from '../../board/pool-board.js'
import { makeEntry, ZERO_HASH, type Entry, type EntryType } from '../../board/raft/index.js'
import {
  applyPayment,
  buildPartitionStatement,
  initialState,
  mergeState,
  type EquivocationEvidence,
  type Genesis,
  type PartitionStatement,
  type PoolRef,
  type PoolState,
  type SignedState
} from '../../protocol/index.js'
import { memberByKey, signAllState, signStatementBy, testGenesis } from '../protocol/fixtures.js'

export { MEMBERS, memberByKey, signAllState, signStatementBy, testGenesis } from '../protocol/fixtures.js'

/** A hash-chained log of committed entries, numbered from 1. */
export class TestLog {
  readonly entries: Entry[] = []
  private prev = ZERO_HASH

  add(data: Uint8Array, type: EntryType = 'normal'): Entry {
    const e = makeEntry(this.prev, this.entries.length + 1, 1, type, data)
    this.prev = e.hash
    this.entries.push(e)
    return e
  }
}

/** A board and its log: `push` appends an entry and applies it. */
export class Harness {
  readonly log = new TestLog()
  readonly board: PoolBoard
  readonly applied: Applied[] = []

  constructor(board = new PoolBoard()) {
    this.board = board
  }

  push(data: Uint8Array): Applied {
    const a = this.board.apply(this.log.add(data))
    this.applied.push(a)
    return a
  }

  /** Applies and asserts acceptance, showing the reason otherwise. */
  accept(data: Uint8Array): Applied {
    const a = this.push(data)
    assert.equal(a.result.outcome, 'accepted', `expected acceptance, got: ${a.result.reason}`)
    return a
  }

  /** Applies and asserts rejection with a reason matching `pattern`. */
  reject(data: Uint8Array, pattern: RegExp): Applied {
    const a = this.push(data)
    assert.equal(a.result.outcome, 'rejected', `expected rejection matching ${pattern}`)
    assert.match(a.result.reason, pattern)
    return a
  }

  state(ref: PoolRef = { kind: 'root' }): PoolState {
    const s = this.board.currentState(ref)
    assert(s !== undefined, 'no such pool')
    return s
  }
}

/** A small pool: X = 10 blocks, created at height 100. */
export function smallGenesis(n = 5, balances?: bigint[]): Genesis {
  return testGenesis(n, balances ?? Array.from({ length: n }, (_, i) => BigInt((i + 1) * 100_000)), {
    kickoutDelayBlocks: 10,
    creationHeight: 100
  })
}

export function genesisEntry(g: Genesis): Uint8Array {
  return encodeGenesisEntry(g, signAllState(initialState(g)))
}

/** State N+1 of `current` after a payment from member `payer` to `payee` (indices), signed by all. */
export function nextState(
  current: PoolState,
  payer: number,
  payee: number,
  amountSats: bigint,
  heightT = current.heightT
): PoolState {
  return applyPayment(
    current,
    { payer: current.pool.members[payer], payee: current.pool.members[payee], amountSats },
    heightT
  )
}

export function updateEntry(
  current: PoolState,
  payer: number,
  payee: number,
  amountSats: bigint,
  heightT = current.heightT
): Uint8Array {
  return encodeStateEntry(signAllState(nextState(current, payer, payee, amountSats, heightT)))
}

export function signedEntry(signed: SignedState): Uint8Array {
  return encodeStateEntry(signed)
}

/** A partition among the members at `indices` of `parent`, with new balances, signed by `signers` (default: all actives). */
export function partition(
  parent: PoolState,
  indices: number[],
  newBalances: bigint[],
  signers?: Uint8Array[],
  heightT = parent.heightT
): PartitionStatement {
  const actives = indices.map((i) => parent.pool.members[i])
  return signStatementBy(buildPartitionStatement(parent, actives, newBalances, heightT), signers)
}

export function statementEntry(stmt: PartitionStatement): Uint8Array {
  return encodeStatementEntry(stmt)
}

export function evidenceEntry(ev: EquivocationEvidence): Uint8Array {
  return encodeEvidenceEntry(ev)
}

export function blocksEntry(count: number): Uint8Array {
  return encodeBlocksEntry(count)
}

export function kickoutEntry(pool: PoolRef, stateNumber: number, member: Uint8Array): Uint8Array {
  return encodeKickoutEntry({ pool, stateNumber, member })
}

/** The secret key of a member key (for forging and partial signing in tests). */
export function secretOf(key: Uint8Array): Uint8Array {
  return memberByKey(key).secretKey
}

/** The merge of the frozen pool `ref` as the board folds it now, signed by every member (or `signed` given). */
export function mergeOf(board: PoolBoard, ref: PoolRef = { kind: 'root' }, heightT?: number): SignedState {
  const fold = board.foldPartitions(ref)
  assert(fold.ok, fold.ok ? '' : fold.reason)
  return signAllState(mergeState(fold.state, fold.balances, heightT ?? fold.state.heightT))
}

export function mergeEntry(signed: SignedState): Uint8Array {
  return encodeMergeEntry(signed)
}
