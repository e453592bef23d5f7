import { randomBytes } from 'node:crypto'
import type { PoolBoard } from '../../board/pool-board.js'
import { equalBytes } from '../../protocol/bytes.js'
import { indexOfKey, short } from '../../protocol/common.js'
import { poolIdOf } from '../../protocol/genesis.js'
import {
  makeSignatureShare,
  type MergeRequest,
  type PartitionRequest,
  type SignatureShare,
  type UpdateRequest
} from '../../protocol/requests.js'
import { buildPartitionStatement, initialState } from '../../protocol/rules.js'
import { stateHash, type PoolState } from '../../protocol/state.js'
import type { PartitionStatement } from '../../protocol/statement.js'
import type { Database } from '../../storage/database.js'
import { DefenseRefusal } from '../defense/refusal.js'
import type { MemberEntry } from '../host/config.js'
import type { GenesisProposal } from '../net/gossip.js'
import type { Member } from './members.js'
import { READ_TIMEOUT_MS, type BoardRead } from './propose.js'
import { SignedRecords, type SignedStateRecord, type SignedStatementRecord } from './signed-record.js'
import { MergeRefusal, PoolMerge } from './merge.js'
import type { Logger } from '../host/log.js'
import { traceHop } from './trace.js'
import type { PoolWords } from './words.js'
import { WontSign, decidePartitionOn, decideUpdateOn } from './decide.js'

/**
 * What this member signs: its signing policy, every refusal rule in one place. It signs state 0 of
 * a genesis that lists exactly the configured members with the keys they answered hello with; at
 * most one state N+1 per state N; and at most one partition statement per Withdraw output of its
 * own, never one that conflicts with a statement its board holds or that a defense found, never
 * one that lowers its balance unless it pays, never for a proven equivocator. Its promises are
 * remembered on disk (signed-record.ts), so a restart does not forget them.
 */

/** The refusal code of a member that could not decide yet (it could not read the board): the proposer waits on. */
export const UNAVAILABLE = 'unavailable'

export { WontSign }

/** A request that cannot be genuine (another pool's id): dropped, not refused. */
export class Forged extends Error {}

/** The defenses the signer asks before it signs a statement (daemon/defense/index.ts). */
export interface SignerDefenses {
  /** A statement another member proved this node's board lacks, conflicting with `statement` (no network). */
  reportedConflict: (statement: PartitionStatement) => DefenseRefusal | null
  /** The checks that need other members; throws DefenseRefusal naming what was found. */
  beforeSign: (statement: PartitionStatement, deadlineMs: number, hop?: (name: string) => void) => Promise<void>
  /** Starts what of beforeSign needs no read yet (the quorum read of what is applied), beside the read. */
  prepare?: () => void
}

/** A partition request's statement, derived once from the parent state this node held as current. */
export interface DerivedStatement {
  readonly parent: PoolState
  readonly statement: PartitionStatement
}

export interface MemberSignerOptions {
  selfPeerId: string
  memberKey: Uint8Array
  memberSecret: Uint8Array
  /** Every member in the config: a genesis must list exactly these. */
  configMembers: readonly MemberEntry[]
  /** The keys members answered hello with. */
  members: { byPeer: (peerId: string) => Member | undefined }
  poolBoard: PoolBoard
  /** Where the promises are kept. */
  db: Database
  read: BoardRead
  words: PoolWords
  /** None: no defense is asked (a lab coalition member, or a node built without them). */
  defenses?: SignerDefenses
  /** The evidence defense's rule: refuse every request of a proven equivocator. */
  refuseEquivocators: boolean
  /** The longest round (rounds.ts): a statement signed longer ago is no longer being signed. */
  maxRoundMs: number
  /** Where the round's debug trace goes (daemon/pool/trace.ts). */
  logger?: Logger
}

/** How far members' clocks may disagree: a round is over this long after its deadline (merges rely on it). */
const CLOCK_SLACK_MS = 10_000

export class MemberSigner {
  private readonly memory: SignedRecords
  /** Merging a frozen pool back (merge.ts): what this member signs, and the proposer's plan. */
  readonly merger: PoolMerge

  constructor(private readonly options: MemberSignerOptions) {
    this.memory = new SignedRecords(options.db)
    this.merger = new PoolMerge({
      poolBoard: options.poolBoard,
      memberKey: options.memberKey,
      memberSecret: options.memberSecret,
      memory: this.memory,
      read: async (timeoutMs) => {
        await options.read(timeoutMs)
      },
      label: (ref) => options.words.label(ref),
      nameOf: (key) => options.words.nameOf(key),
      maxRoundMs: options.maxRoundMs,
      clockSlackMs: CLOCK_SLACK_MS
    })
  }

  /** Signs the merge of a frozen pool if it is the one this member's board folds (merge.ts); null if not a member. */
  async decideMerge(req: MergeRequest): Promise<SignatureShare | null> {
    const { poolBoard } = this.options
    if (poolBoard.poolId !== null && !equalBytes(req.poolId, poolBoard.poolId))
      throw new Forged(`a merge request for pool ${short(req.poolId)}, not ours`)
    this.refuseEquivocator(req.proposer)
    try {
      return await this.merger.decide(req, {
        nowMs: Date.now(),
        readTimeoutMs: Math.max(1, Math.min(READ_TIMEOUT_MS, req.deadlineMs - Date.now()))
      })
    } catch (err) {
      if (err instanceof MergeRefusal) throw new WontSign(err.code, err.message)
      throw err
    }
  }

  /** The state N+1 this member signed for state N of `pool`, if it did (a round that failed leaves one). */
  async signedState(...args: Parameters<SignedRecords['signedState']>): Promise<SignedStateRecord | undefined> {
    return await this.memory.signedState(...args)
  }

  /** The statement this member signed spending its Withdraw output `mine`, if it did. */
  async signedStatement(
    ...args: Parameters<SignedRecords['signedStatement']>
  ): Promise<SignedStatementRecord | undefined> {
    return await this.memory.signedStatement(...args)
  }

  /** Every statement this member signed, newest first. */
  async signedStatements(): Promise<SignedStatementRecord[]> {
    return await this.memory.signedStatements()
  }

  /**
   * The statement of a partition request, from the parent state this node holds as current: null
   * if it holds another state (behind or ahead) or the request does not derive one (the actives
   * refuse it once they have read the board).
   */
  derive(req: PartitionRequest): DerivedStatement | null {
    const parent = this.options.poolBoard.currentState(req.parent.pool)
    if (parent === undefined || parent.stateNumber !== req.parent.stateNumber) return null
    try {
      return { parent, statement: buildPartitionStatement(parent, req.actives, req.newBalances, req.heightT) }
    } catch {
      return null
    }
  }

  /** Signs state 0 of a proposed genesis that lists exactly the configured members with the keys they answered hello with. */
  decideGenesis(proposal: GenesisProposal): SignatureShare {
    const { poolBoard, configMembers, memberKey } = this.options
    const g = proposal.genesis
    if (poolBoard.genesis !== null)
      throw new WontSign('exists', `the board already holds pool ${short(poolBoard.poolId!)}`)
    const mine = g.members.find((m) => equalBytes(m.key, memberKey))
    if (mine === undefined) throw new WontSign('not-listed', 'the genesis does not list my member key')
    if (mine.peerId !== this.options.selfPeerId)
      throw new WontSign('not-listed', `the genesis binds my member key to peer ${mine.peerId}, not to mine`)
    const listed = new Set(g.members.map((m) => m.peerId))
    const configured = new Set(configMembers.map((m) => m.peerId))
    const strangers = [...listed].filter((p) => !configured.has(p))
    const left = configMembers.filter((m) => !listed.has(m.peerId)).map((m) => m.name)
    if (strangers.length > 0)
      throw new WontSign('rule', `the genesis lists peers that are not members: ${strangers.join(', ')}`)
    if (left.length > 0) throw new WontSign('rule', `the genesis leaves out members ${left.join(', ')}`)
    for (const m of g.members) {
      const known = this.options.members.byPeer(m.peerId)?.key
      if (known != null && !equalBytes(known, m.key))
        throw new WontSign(
          'rule',
          `the genesis gives ${this.options.members.byPeer(m.peerId)!.name} key ${short(m.key)}, but it answered hello with ${short(known)}`
        )
    }
    if (Date.now() > proposal.deadlineMs) throw new WontSign('late', "the round's deadline has passed")
    const state0 = initialState(g)
    return makeSignatureShare(
      { kind: 'state', poolId: poolIdOf(g), roundId: proposal.roundId, subject: stateHash(state0), member: memberKey },
      this.options.memberSecret,
      randomBytes(32)
    )
  }

  /** Signs state N+1 if it is acceptable to this member and it signed no other N+1 for N; null if not asked. */
  async decideUpdate(req: UpdateRequest): Promise<SignatureShare | null> {
    const { poolBoard, memberKey, words } = this.options
    // A node that has not applied the genesis yet reads the board before it judges.
    if (poolBoard.poolId === null) await this.options.read(readTimeout(req.deadlineMs))
    if (poolBoard.poolId === null) return null
    if (!equalBytes(req.poolId, poolBoard.poolId))
      throw new Forged(`an update request for pool ${short(req.poolId)}, not ours`)
    let current = poolBoard.currentState(req.from.pool)
    // Behind the request (or its height)? Make sure we have applied everything committed first.
    if (current === undefined || current.stateNumber < req.from.stateNumber || req.heightT > poolBoard.chainHeight) {
      await this.options.read(readTimeout(req.deadlineMs))
      if (this.options.logger !== undefined) traceHop(this.options.logger, req.roundId, 'read')
      current = poolBoard.currentState(req.from.pool)
    }
    if (current !== undefined && indexOfKey(current.pool.members, memberKey) >= 0) this.refuseEquivocator(req.proposer)
    const decided = decideUpdateOn(poolBoard, memberKey, req, Date.now(), words)
    if (decided === null) return null
    current = decided.current
    const hash = decided.hash
    const kept = await this.memory.promiseState(current.pool.ref, current.stateNumber, {
      stateHash: hash,
      roundId: req.roundId,
      heightT: req.heightT,
      payment: req.payment,
      deadlineMs: req.deadlineMs
    })
    if (this.options.logger !== undefined) traceHop(this.options.logger, req.roundId, 'promised')
    if (!kept.ok) {
      const p = kept.earlier.payment
      throw new WontSign(
        'already-signed',
        `I already signed another state ${current.stateNumber + 1} of the ${words.label(current.pool.ref)} (${words.nameOf(p.payer)} pays ${words.nameOf(p.payee)} ${p.amountSats} sats); I sign one state N+1 per state N`
      )
    }
    return makeSignatureShare(
      { kind: 'state', poolId: req.poolId, roundId: req.roundId, subject: hash, member: memberKey },
      this.options.memberSecret,
      randomBytes(32)
    )
  }

  /**
   * Signs the statement a partition request asks for, after a linearizable read, unless a
   * committed statement already spends one of its outputs (refused, naming that statement) or this
   * member signed another statement spending its own Withdraw output. Null if not an active.
   *
   * `alreadyRead`: the caller (the proposer, for its own round) read the board just now.
   * `derived`: the statement as the caller derived it when the request arrived (`derive`); the
   * defenses are asked about it before the read, and it is not derived again if the parent state
   * is still the same.
   */
  async decidePartition(
    req: PartitionRequest,
    opts: { alreadyRead: boolean; derived?: DerivedStatement | null }
  ): Promise<SignatureShare | null> {
    const { poolBoard, memberKey, words } = this.options
    if (indexOfKey(req.actives, memberKey) < 0) return null
    this.refuseEquivocator(req.proposer)
    const derived = opts.derived ?? null
    // A statement another member proved my board lacks needs no read to refuse (the board may be unreadable).
    const reportedAsked = !opts.alreadyRead && derived !== null
    if (reportedAsked) this.refuseReported(derived.statement)
    const hop = (name: string): void => {
      if (this.options.logger !== undefined) traceHop(this.options.logger, req.roundId, name)
    }
    if (!opts.alreadyRead) {
      this.options.defenses?.prepare?.()
      await this.options.read(readTimeout(req.deadlineMs))
      hop('read')
    }
    const decided = decidePartitionOn(poolBoard, memberKey, req, Date.now(), words, derived)
    if (decided === null) return null
    const { statement, id, mine } = decided
    const defenses = this.options.defenses
    if (defenses !== undefined) {
      if (!reportedAsked) this.refuseReported(statement)
      try {
        await defenses.beforeSign(statement, req.deadlineMs, hop)
        hop('defenses')
      } catch (err) {
        if (err instanceof DefenseRefusal) throw new WontSign(err.code, err.message, err.conflict)
        throw err
      }
    }
    const kept = await this.memory.promiseStatement(statement.spent[mine], statement)
    hop('promised')
    if (!kept.ok) {
      const e = kept.earlier
      const onBoard = poolBoard.statement(e.statementId)
      throw new WontSign(
        'already-signed',
        `I already signed statement ${short(e.statementId)} (${words.names(e.statement.actives)}${onBoard === undefined ? ', not on the board' : `; ${onBoard.status} at board index ${onBoard.index}`}) spending my Withdraw output of the ${words.stateLabel(statement.parent)}; I never sign a second one`,
        onBoard?.status === 'accepted' ? { statementId: e.statementId, index: onBoard.index } : null
      )
    }
    return makeSignatureShare(
      { kind: 'statement', poolId: req.poolId, roundId: req.roundId, subject: id, member: memberKey },
      this.options.memberSecret,
      randomBytes(32)
    )
  }

  /** Refuses at once a statement that conflicts with one another member proved this node's board lacks. */
  private refuseReported(statement: PartitionStatement): void {
    const reported = this.options.defenses?.reportedConflict(statement) ?? null
    if (reported !== null) throw new WontSign(reported.code, reported.message, reported.conflict)
  }

  private refuseEquivocator(proposer: Uint8Array): void {
    // Our own request goes out regardless: the other members will refuse it, and say why.
    if (equalBytes(proposer, this.options.memberKey) || !this.options.refuseEquivocators) return
    if (this.options.poolBoard.equivocators().some((k) => equalBytes(k, proposer))) {
      throw new WontSign(
        'equivocator',
        `${this.options.words.nameOf(proposer)} is proven to have signed conflicting statements (evidence on the board); I do not sign its requests`
      )
    }
  }
}

/** A member's read waits at most until the round's deadline (and READ_TIMEOUT_MS), at least 1 ms. */
function readTimeout(deadlineMs: number): number {
  return Math.max(1, Math.min(READ_TIMEOUT_MS, deadlineMs - Date.now()))
}
