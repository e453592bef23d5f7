import { randomBytes } from 'node:crypto'
import type { GossipSub } from '@libp2p/gossipsub'
import { encodeEvidenceEntry, encodeGenesisEntry, encodeKickoutEntry, encodeStateEntry, encodeStatementEntry } from '../../board/entries.js'
import type { ApplyResult, PoolBoard, StatementRecord } from '../../board/pool-board.js'
import { compareBytes, equalBytes, toHex } from '../../protocol/bytes.js'
import { equalOutpoints, indexOfKey, short, sumSats, type Outpoint, type PoolRef, type StateRef } from '../../protocol/common.js'
import { buildEvidence, evidenceId, verifyEvidence, type EquivocationEvidence } from '../../protocol/evidence.js'
import { makeGenesis, poolIdOf, type Genesis } from '../../protocol/genesis.js'
import { sha256 } from '../../protocol/hash.js'
import { MAX_MEMBERS } from '../../protocol/limits.js'
import {
  makeSignatureShare, partitionRequestSigningHash, signPartitionRequest, signUpdateRequest,
  type PartitionRequest, type ShareKind, type SignatureShare, type UpdateRequest
} from '../../protocol/requests.js'
import {
  applyPayment, buildPartitionStatement, checkPartitionRequest, initialState,
  makePartitionRequest, makeUpdateRequest, RuleError
} from '../../protocol/rules.js'
import { stateHash, withdrawOutpoints, type PoolState, type SignedState } from '../../protocol/state.js'
import {
  conflictingOutpoints, statementId, statementSignatureOf, withStatementSignatures, type PartitionStatement
} from '../../protocol/statement.js'
import type { Database } from '../../storage/database.js'
import type { Board } from '../replica/board.js'
import type { NodeConfig } from '../host/config.js'
import { DefenseRefusal, type Defenses } from '../defense/index.js'
import {
  PoolGossip, poolTopic, refusalSigningHash, signRefusal, ZERO_POOL_ID,
  type GenesisProposal, type GossipCounters, type GossipMessage, type Refusal
} from '../net/gossip.js'
import type { Logger } from '../host/log.js'
import { SignMemory } from './signed-record.js'
import { WontSign, decidePartitionOn, decideUpdateOn, type DecisionNames } from './decide.js'
import { PoolMembers } from './members.js'
import { BoardEntries, PoolError } from './propose.js'
import {
  byName, DEFAULT_BALANCE_SATS, DEFAULT_KICKOUT_DELAY_BLOCKS, homeOf, homesOf, kickoutHeight, poolLabeller, poolStatusView, refId, type Home, type PoolStatusView
} from './view.js'
import type { MemberRpc } from '../net/rpc.js'

/**
 * The pool on top of the board, on one member's node.
 *
 * Every pool fact is a board entry (genesis, signed states, partition statements, evidence,
 * blocks, kick-outs); this service gathers the signatures that make them, by gossip among the
 * members, and proposes the entries. What is current is always what the pool board applied.
 *
 * As a proposer it runs rounds: an update (every member of the (sub-)pool signs state N+1), a
 * partition (every active signs the statement), a genesis (every member signs state 0). As a
 * member it answers other members' rounds: it checks each request against the board, signs at
 * most one state N+1 per state N and at most one statement per Withdraw output of its own
 * (remembered on disk), and otherwise tells the proposer why not, in a signed refusal. As any
 * node it watches statement signatures for equivocation and makes sure the board records the
 * evidence.
 */

export interface PoolServiceOptions {
  selfPeerId: string
  memberKey: Uint8Array
  memberSecret: Uint8Array
  config: NodeConfig
  pubsub: GossipSub
  rpc: MemberRpc
  board: Pick<Board, 'linearizableRead' | 'role'>
  /** Whether a peer is a pool member (the gossip drops everyone else's messages). */
  isMember: (peerId: string) => boolean
  poolBoard: PoolBoard
  db: Database
  /** Proposes a board entry through the leader (PoolboardNode.proposeEntry). */
  propose: (data: Uint8Array, timeoutMs: number) => Promise<{ index: number, term: number }>
  /** Peer ids of the members this node is connected to now. */
  connectedPeerIds: () => string[]
  logger: Logger
  /** The defenses against a coalition hiding a statement (daemon/defense/index.ts); none when absent. */
  defenses?: Defenses
}

export const DEFAULT_ROUND_TIMEOUT_MS = 10_000
export const MAX_ROUND_TIMEOUT_MS = 120_000
/** A proposer publishes its request again this often until every member answered (gossip may miss a peer). */
const REPUBLISH_MS = 1_000
/** How long a round waits for the connected members' subscriptions before it first publishes. */
const SUBSCRIBER_WAIT_MS = 2_000
const READ_TIMEOUT_MS = 5_000
const BOARD_TIMEOUT_MS = 15_000
const MAX_OWN_ROUNDS = 16
const MAX_ANSWERS_KEPT = 1_024
/** Answers being worked out at once (each may wait for a linearizable read). */
const MAX_TASKS = 64
const MAX_STATEMENTS_WATCHED = 256
/** Shares kept until their request arrives: every member's share of a few rounds of the largest pool. */
const MAX_EARLY_SHARES = 4 * MAX_MEMBERS
const MAX_PENDING_EVIDENCE = 64
const MAX_GOSSIPED_EVIDENCE_IDS = 4_096
/** A node that is not the leader proposes evidence it learned only if the board still lacks it after this long. */
const EVIDENCE_FALLBACK_MS = 3_000
/** An answer is kept this long after its round's deadline, to re-send it to a proposer that asks again. */
const ANSWER_KEPT_MS = 60_000

/** The refusal code of a member that could not decide yet (it could not read the board): the proposer waits on. */
const UNAVAILABLE = 'unavailable'

type RoundKind = 'genesis' | 'update' | 'partition'

interface Round {
  id: string
  roundId: Uint8Array
  kind: RoundKind
  /** What is being signed, for people: "state 2 of the root pool". */
  what: string
  poolId: Uint8Array
  shareKind: ShareKind
  subject: Uint8Array
  needed: Uint8Array[]
  shares: Map<string, Uint8Array>
  refusals: Map<string, Refusal>
  startedMs: number
  deadlineMs: number
  wake: () => void
}

interface Answer { msg: GossipMessage | null, keepUntilMs: number }

interface WatchedStatement {
  id: Uint8Array
  statement: PartitionStatement
  /** Valid signatures seen by gossip, by member key hex. */
  signatures: Map<string, Uint8Array>
  keepUntilMs: number
}

export interface PendingRoundView {
  kind: RoundKind
  round: string
  what: string
  deadlineInMs: number
  signed: string[]
  refused: string[]
  missing: string[]
}

export interface PoolStatus extends PoolStatusView {
  me: { name: string, key: string, pool: string | null, poolLabel: string | null }
  pending: PendingRoundView[]
  gossip: GossipCounters & { topic: string, subscribers: number }
}

export interface RefusalView { member: string, code: string, reason: string, conflict: { statementId: string, index: number } | null }

export class PoolService {
  readonly members: PoolMembers
  readonly gossip: PoolGossip
  readonly entries: BoardEntries
  private readonly memory: SignMemory
  private readonly rounds = new Map<string, Round>()
  private readonly answers = new Map<string, Answer>()
  private readonly answering = new Set<string>()
  private tasks = 0
  private readonly watched = new Map<string, WatchedStatement>()
  /** Round id hex → statement id hex, for the shares of rounds this node watches. */
  private readonly roundStatement = new Map<string, string>()
  private readonly earlyShares: SignatureShare[] = []
  private readonly pendingEvidence = new Map<string, EquivocationEvidence>()
  private readonly gossipedEvidence = new Set<string>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private stopped = false
  /** The evidence defense: broadcast evidence, refuse proven equivocators (a lab coalition member does neither). */
  private readonly evidenceOn: boolean

  constructor (private readonly options: PoolServiceOptions) {
    const { config, rpc, poolBoard, logger } = options
    this.members = new PoolMembers({
      selfPeerId: options.selfPeerId,
      selfKey: options.memberKey,
      selfSecret: options.memberSecret,
      members: config.members,
      rpc,
      signatureCache: poolBoard.signatureCache,
      logger
    })
    this.gossip = new PoolGossip({
      pubsub: options.pubsub,
      topic: poolTopic(config.members.map((m) => m.peerId)),
      isMember: options.isMember,
      logger,
      onMessage: (msg, from) => { this.onGossip(msg, from) }
    })
    this.entries = new BoardEntries({ propose: options.propose, poolBoard })
    this.memory = new SignMemory(options.db)
    this.evidenceOn = options.defenses?.enabled.evidence ?? config.defenses.evidence
    if (poolBoard.genesis !== null) this.members.adoptGenesis(poolBoard.genesis)
  }

  async start (): Promise<void> {
    await this.members.start()
    this.gossip.start()
  }

  stop (): void {
    this.stopped = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.gossip.stop()
    this.entries.stop()
    for (const r of this.rounds.values()) r.wake()
  }

  /** Called with the result of every entry this node applies. */
  onBoardResult (result: ApplyResult): void {
    this.entries.applied()
    const { poolBoard } = this.options
    if (result.kind === 'genesis' && result.outcome === 'accepted' && poolBoard.genesis !== null) this.members.adoptGenesis(poolBoard.genesis)
    if (result.kind === 'statement' && result.evidenceIds.length > 0 && this.evidenceOn) {
      // The board convicted someone from a conflicting statement: tell every member.
      const ids = new Set(result.evidenceIds.map(toHex))
      for (const e of poolBoard.evidence()) {
        if (!ids.has(toHex(e.id))) continue
        this.options.defenses?.onEvidence(e.evidence, 'detected', `my board rejected the entry at index ${result.index}: it conflicts with a statement it holds`)
        this.gossipEvidenceOnce(e.evidence)
      }
    }
    if (result.kind === 'evidence' && result.outcome === 'accepted') {
      for (const id of result.evidenceIds) this.pendingEvidence.delete(toHex(id))
    }
  }

  // ------------------------------------------------------------------------------------------
  // reading

  /**
   * The status after a linearizable read when `fresh`, so that a node that just came back shows
   * what the board holds now; `fresh` in the answer says whether that read succeeded.
   */
  async freshStatus (timeoutMs: number): Promise<PoolStatus & { fresh: boolean }> {
    let fresh = true
    try { await this.read(timeoutMs) } catch { fresh = false }
    return { ...this.status(), fresh }
  }

  status (): PoolStatus {
    const view = poolStatusView(this.options.poolBoard, (k) => this.members.nameOf(k))
    const key = toHex(this.options.memberKey)
    // The view placed every member of the genesis already; before the genesis, no one has a pool.
    const place = view.members.find((m) => m.key === key)
    const nowMs = Date.now()
    return {
      ...view,
      me: { name: this.members.self.name, key, pool: place?.pool ?? null, poolLabel: place?.poolLabel ?? null },
      pending: [...this.rounds.values()].map((r) => ({
        kind: r.kind,
        round: toHex(r.roundId).slice(0, 16),
        what: r.what,
        deadlineInMs: Math.max(0, r.deadlineMs - nowMs),
        signed: this.nameList(r.needed.filter((k) => r.shares.has(toHex(k)))),
        refused: this.nameList(r.needed.filter((k) => r.refusals.has(toHex(k)))),
        missing: this.nameList(r.needed.filter((k) => !r.shares.has(toHex(k)) && !r.refusals.has(toHex(k))))
      })),
      gossip: { ...this.gossip.stats(), topic: this.gossip.topic, subscribers: this.gossip.subscribers().length }
    }
  }

  evidenceList (): Array<{ id: string, member: string, memberKey: string, index: number, source: string, first: StatementSummary, second: StatementSummary }> {
    return this.options.poolBoard.evidence().map((e) => ({
      id: toHex(e.id),
      member: this.members.nameOf(e.evidence.member),
      memberKey: toHex(e.evidence.member),
      index: e.index,
      source: e.source,
      first: this.summarize(e.evidence.first),
      second: this.summarize(e.evidence.second)
    }))
  }

  private summarize (s: PartitionStatement): StatementSummary {
    const id = statementId(s)
    const record = this.options.poolBoard.statement(id)
    return {
      statementId: toHex(id),
      parent: this.stateLabel(s.parent),
      actives: this.nameList(s.actives),
      balances: Object.fromEntries(s.actives.map((k, i) => [this.members.nameOf(k), s.newBalances[i]])),
      board: record === undefined ? null : { status: record.status, index: record.index }
    }
  }

  // ------------------------------------------------------------------------------------------
  // commands (proposer side)

  /** Creates the pool: every member answers hello, signs state 0 of the genesis; the genesis entry is proposed. */
  async create (params: { balanceSats?: bigint, kickoutDelayBlocks?: number, timeoutMs?: number }): Promise<Record<string, unknown>> {
    const timeoutMs = roundTimeout(params.timeoutMs)
    const deadlineMs = Date.now() + timeoutMs
    await this.read()
    const { poolBoard } = this.options
    if (poolBoard.genesis !== null) throw new PoolError('exists', `the board already holds pool ${short(poolBoard.poolId!)}`)
    const balanceSats = params.balanceSats ?? DEFAULT_BALANCE_SATS
    const missing = await this.members.helloAll(deadlineMs)
    if (missing.length > 0) {
      throw new PoolError('round-failed', `members ${missing.map((m) => m.name).join(', ')} did not answer hello within ${timeoutMs} ms: every member must be online to create the pool`, { missing: missing.map((m) => m.name) })
    }
    const roundId = randomBytes(32)
    let genesis: Genesis
    try {
      genesis = makeGenesis({
        members: this.members.list().map((m) => ({ key: m.key!, peerId: m.peerId, balanceSats })),
        // Simulated: a real deployment funds the pool on chain first and names that output here.
        funding: { txid: sha256(roundId), vout: 0 },
        kickoutDelayBlocks: params.kickoutDelayBlocks ?? DEFAULT_KICKOUT_DELAY_BLOCKS,
        creationHeight: poolBoard.chainHeight
      })
    } catch (err) {
      throw new PoolError('bad-request', `cannot build the genesis: ${(err as Error).message}`)
    }
    const poolId = poolIdOf(genesis)
    const state0 = initialState(genesis)
    const proposal: GenesisProposal = { roundId, deadlineMs, genesis }
    const own = this.decideGenesis(proposal)
    const round = this.newRound('genesis', roundId, poolId, 'state 0 of the new pool', 'state', stateHash(state0), state0.pool.members, deadlineMs)
    round.shares.set(toHex(this.options.memberKey), own.signature)
    await this.runRound(round, [{ kind: 'genesis-proposal', proposal }])
    this.throwUnlessComplete(round, 'create the pool', () => 'every member must be online to create the pool')
    const signed: SignedState = { state: state0, signatures: state0.pool.members.map((k) => round.shares.get(toHex(k))!) }
    const result = await this.entries.propose(encodeGenesisEntry(genesis, signed), BOARD_TIMEOUT_MS)
    if (result.outcome !== 'accepted') throw new PoolError('rejected', `the board refused the genesis: ${result.reason}`)
    this.options.logger.info({ poolId: toHex(poolId), index: result.index }, 'pool created')
    return {
      poolId: toHex(poolId),
      index: result.index,
      members: this.nameList(state0.pool.members),
      balances: this.namedBalances(state0),
      kickoutDelayBlocks: genesis.kickoutDelayBlocks,
      creationHeight: genesis.creationHeight
    }
  }

  /** Pays `amountSats` to another member of this member's current (sub-)pool: state N+1, signed by every member of it. */
  async pay (params: { to: string, amountSats: bigint, timeoutMs?: number }): Promise<Record<string, unknown>> {
    const timeoutMs = roundTimeout(params.timeoutMs)
    const deadlineMs = Date.now() + timeoutMs
    await this.read()
    const me = this.options.memberKey
    const home = this.requireHome(me, 'you')
    const current = this.openState(home)
    const payee = this.resolve(params.to)
    const where = this.label(current.pool.ref)
    if (indexOfKey(current.pool.members, payee.key) < 0) {
      const theirs = homeOf(this.options.poolBoard, payee.key)
      throw new PoolError('not-member', `${payee.name} is not a member of your pool (the ${where}; its members: ${this.names(current.pool.members)})` +
        `${theirs === null ? '' : `; ${payee.name}'s funds are in the ${this.label(theirs.view.ref)}`}: a payment moves sats inside one pool`)
    }
    if (typeof params.amountSats !== 'bigint' || params.amountSats <= 0n) throw new PoolError('bad-request', `amount: expected a positive number of sats, got ${String(params.amountSats)}`)
    const payment = { payer: me, payee: payee.key, amountSats: params.amountSats }
    let heightT = Math.max(current.heightT, this.options.poolBoard.chainHeight)
    // A round that failed left our promise for state N+1: retrying the same payment signs the same state again.
    const earlier = await this.memory.signedState(current.pool.ref, current.stateNumber)
    if (earlier !== undefined) {
      const same = equalBytes(earlier.payment.payer, payment.payer) && equalBytes(earlier.payment.payee, payment.payee) && earlier.payment.amountSats === payment.amountSats
      if (!same) {
        throw new PoolError('refused', `you already signed a different state ${current.stateNumber + 1} of the ${where} (${this.members.nameOf(earlier.payment.payer)} pays ${this.members.nameOf(earlier.payment.payee)} ${earlier.payment.amountSats} sats) that never reached the board; ` +
          `a member signs one state N+1 per state N: retry that payment, or partition with the members who are online`)
      }
      heightT = earlier.heightT
    }
    let request: UpdateRequest
    let proposed: PoolState
    try {
      request = signUpdateRequest(makeUpdateRequest(current, { proposer: me, payment, heightT, deadlineMs, roundId: randomBytes(32) }), this.options.memberSecret, randomBytes(32))
      proposed = applyPayment(current, payment, heightT)
    } catch (err) {
      if (err instanceof RuleError) throw new PoolError('bad-request', err.message)
      throw err
    }
    const what = `state ${proposed.stateNumber} of the ${where}`
    const own = await this.decideAsProposer(async () => await this.decideUpdate(request))
    const round = this.newRound('update', request.roundId, current.pool.poolId, what, 'state', stateHash(proposed), current.pool.members, deadlineMs)
    round.shares.set(toHex(me), own.signature)
    await this.runRound(round, [{ kind: 'update-request', request }])
    this.throwUnlessComplete(round, `make ${what}`, (answered) => answered.length === 0
      ? 'nobody answered; to go on without the members who are offline, partition with the online ones: poolboard pool partition --with MEMBERS'
      : `to go on without them, partition with the online ones: poolboard pool partition --with ${answered.join(',')}`)
    const signed: SignedState = { state: proposed, signatures: proposed.pool.members.map((k) => round.shares.get(toHex(k))!) }
    const result = await this.entries.propose(encodeStateEntry(signed), BOARD_TIMEOUT_MS)
    if (result.outcome !== 'accepted') throw new PoolError('rejected', `every member signed ${what}, but the board refused it: ${result.reason}`)
    return {
      pool: refId(proposed.pool.ref),
      poolLabel: where,
      state: proposed.stateNumber,
      index: result.index,
      payment: { from: this.members.nameOf(me), to: payee.name, amountSats: params.amountSats },
      balances: this.namedBalances(proposed),
      totalSats: sumSats(proposed.balances)
    }
  }

  /**
   * Partitions this member's current (sub-)pool among `with` and this member (the actives), at its
   * current state; passives are untouched. Balances stay as they are unless `pay` moves sats from
   * this member to other actives. Accepted once the statement is committed and applied without conflict.
   */
  async partition (params: { with: string[], pay?: Array<{ to: string, amountSats: bigint }>, timeoutMs?: number }): Promise<Record<string, unknown>> {
    const timeoutMs = roundTimeout(params.timeoutMs)
    const startMs = performance.now()
    const deadlineMs = Date.now() + timeoutMs
    await this.read()
    const readMs = performance.now() - startMs
    const me = this.options.memberKey
    const home = this.requireHome(me, 'you')
    const parent = home.view
    const parentState = this.options.poolBoard.currentState(parent.ref)!
    const where = `${this.label(parent.ref)} state ${parent.stateNumber}`
    const actives = new Map<string, Uint8Array>([[toHex(me), me]])
    const homeIn = homesOf(this.options.poolBoard)
    for (const text of params.with) {
      const m = this.resolve(text)
      const theirs = homeIn(m.key)
      if (theirs === null) throw new PoolError('not-member', `${m.name} has no funds in any pool (kicked out)`)
      if (refId(theirs.view.ref) !== refId(parent.ref)) {
        throw new PoolError('not-member', `${m.name}'s funds are in the ${this.label(theirs.view.ref)}, yours in the ${this.label(parent.ref)}: a partition spends the Withdraw outputs of one pool state, so every active must be in the same pool`)
      }
      actives.set(toHex(m.key), m.key)
    }
    const activeKeys = [...actives.values()].sort(compareBytes)
    const balances = activeKeys.map((k) => parentState.balances[indexOfKey(parentState.pool.members, k)])
    for (const p of params.pay ?? []) {
      const to = this.resolve(p.to)
      const i = indexOfKey(activeKeys, to.key)
      if (i < 0) throw new PoolError('bad-request', `--pay ${to.name}: not one of the actives (${this.names(activeKeys)})`)
      if (equalBytes(to.key, me)) throw new PoolError('bad-request', '--pay: you cannot pay yourself')
      if (typeof p.amountSats !== 'bigint' || p.amountSats <= 0n) throw new PoolError('bad-request', `--pay ${to.name}: expected a positive number of sats`)
      const mine = indexOfKey(activeKeys, me)
      if (balances[mine] < p.amountSats) throw new PoolError('bad-request', `--pay: you hold ${balances[mine]} sats, cannot pay ${p.amountSats} to ${to.name}`)
      balances[mine] -= p.amountSats
      balances[i] += p.amountSats
    }
    let heightT = Math.max(parentState.heightT, this.options.poolBoard.chainHeight)
    const myOutpoint = withdrawOutpoints(parentState)[indexOfKey(parentState.pool.members, me)]
    const earlier = await this.memory.signedStatement(myOutpoint)
    if (earlier !== undefined) {
      const e = earlier.statement
      const same = e.actives.length === activeKeys.length && e.actives.every((k, i) => equalBytes(k, activeKeys[i]) && e.newBalances[i] === balances[i])
      const accepted = this.options.poolBoard.statement(earlier.statementId)
      if (!same && accepted?.status !== 'accepted') {
        throw new PoolError('refused', `you already signed statement ${short(earlier.statementId)} (${this.names(e.actives)}) spending your Withdraw output of the ${where}, and it never reached the board; ` +
          `a member never signs two statements spending one output: only that one can still be completed (poolboard pool partition --with ${this.nameList(e.actives.filter((k) => !equalBytes(k, me))).join(',')})`)
      }
      if (same) heightT = e.heightT
    }
    let request: PartitionRequest
    let statement: PartitionStatement
    try {
      request = signPartitionRequest(makePartitionRequest(parentState, { proposer: me, actives: activeKeys, newBalances: balances, heightT, deadlineMs, roundId: randomBytes(32) }), this.options.memberSecret, randomBytes(32))
      statement = checkPartitionRequest(parentState, request)
    } catch (err) {
      if (err instanceof RuleError) throw new PoolError('bad-request', err.message)
      throw err
    }
    const own = await this.decideAsProposer(async () => await this.decidePartition(request, { alreadyRead: true }))
    return await this.runPartition(request, statement, own, deadlineMs, where, { startMs, readMs })
  }

  /**
   * Lab only: this member signs a partition that conflicts with the newest statement it signed
   * (bypassing its own never-sign-twice memory) and asks `with` to sign it too, so that one can
   * watch the honest members refuse it, naming the first statement.
   */
  async equivocate (params: { with: string[], timeoutMs?: number }): Promise<Record<string, unknown>> {
    if (!this.options.config.lab) throw new PoolError('lab-only', 'equivocation is a lab behaviour: start the node with --lab (lab=1)')
    const timeoutMs = roundTimeout(params.timeoutMs)
    const deadlineMs = Date.now() + timeoutMs
    // A coalition member trusts its own rewritten board: it needs no majority to agree with it.
    if (!this.options.config.labCoalition) await this.read()
    const me = this.options.memberKey
    const { poolBoard } = this.options
    const signed = (await this.memory.signedStatements()).find((s) => {
      const parent = poolBoard.currentState(s.statement.parent.pool)
      return parent !== undefined && parent.stateNumber === s.statement.parent.stateNumber
    })
    if (signed === undefined) throw new PoolError('bad-request', 'this member has signed no partition statement whose parent state is still current: make a partition first')
    const parentState = poolBoard.currentState(signed.statement.parent.pool)!
    const where = `${this.label(parentState.pool.ref)} state ${parentState.stateNumber}`
    const actives = new Map<string, Uint8Array>([[toHex(me), me]])
    for (const text of params.with) {
      const m = this.resolve(text)
      if (indexOfKey(parentState.pool.members, m.key) < 0) throw new PoolError('not-member', `${m.name} is not a member of the ${where}`)
      actives.set(toHex(m.key), m.key)
    }
    const activeKeys = [...actives.values()].sort(compareBytes)
    const balances = activeKeys.map((k) => parentState.balances[indexOfKey(parentState.pool.members, k)])
    const heightT = Math.max(parentState.heightT, poolBoard.chainHeight)
    const request = signPartitionRequest(makePartitionRequest(parentState, { proposer: me, actives: activeKeys, newBalances: balances, heightT, deadlineMs, roundId: randomBytes(32) }), this.options.memberSecret, randomBytes(32))
    const statement = checkPartitionRequest(parentState, request)
    const id = statementId(statement)
    if (equalBytes(id, signed.statementId)) throw new PoolError('bad-request', `that is the statement you already signed (${short(id)}): choose other members to equivocate with`)
    this.options.logger.warn({ statement: toHex(id), first: toHex(signed.statementId) }, 'lab: signing a statement that conflicts with one this member already signed')
    const own = makeSignatureShare({ kind: 'statement', poolId: statement.poolId, roundId: request.roundId, subject: id, member: me }, this.options.memberSecret, randomBytes(32))
    const first = poolBoard.statement(signed.statementId)
    const firstView = { statementId: toHex(signed.statementId), actives: this.nameList(signed.statement.actives), index: first?.status === 'accepted' ? first.index : null }
    try {
      const accepted = await this.runPartition(request, statement, own, deadlineMs, where)
      return { outcome: 'accepted', statementId: toHex(id), first: firstView, accepted }
    } catch (err) {
      if (!(err instanceof PoolError)) throw err
      const refusals = (err.details.refusals ?? []) as RefusalView[]
      const outcome = err.code === 'round-failed' && refusals.length > 0 ? 'refused' : err.code === 'rejected' ? 'rejected' : 'failed'
      // Past the round (the board did not commit it in time, or refused it), every active had signed.
      const signed = err.code === 'round-failed' || err.code === 'busy' ? (err.details.signed ?? []) as string[] : this.nameList(activeKeys)
      return { outcome, statementId: toHex(id), actives: this.nameList(activeKeys), first: firstView, message: err.message, refusals, signed }
    }
  }

  /** Kicks `member` out of its current pool with its kick-out Withdraw K(N,u); the board refuses before T + X + 1. */
  async kick (params: { member: string }): Promise<Record<string, unknown>> {
    await this.read()
    const m = this.resolve(params.member)
    const home = this.requireHome(m.key, m.name)
    const state = this.options.poolBoard.currentState(home.view.ref)!
    const where = `${this.label(state.pool.ref)} state ${state.stateNumber}`
    const result = await this.entries.propose(encodeKickoutEntry({ pool: state.pool.ref, stateNumber: state.stateNumber, member: m.key }), BOARD_TIMEOUT_MS)
    if (result.outcome !== 'accepted') {
      const { validFromHeight } = kickoutHeight(state, m.key)
      const chain = this.options.poolBoard.chainHeight
      const hint = chain < validFromHeight ? `; ${validFromHeight - chain} more block${validFromHeight - chain === 1 ? '' : 's'} to go (poolboard chain mine ${validFromHeight - chain})` : ''
      throw new PoolError('rejected', `the board refused the kick-out of ${m.name} from the ${where} (index ${result.index}): ${result.reason}${hint}`, { validFromHeight, chainHeight: chain, index: result.index })
    }
    const record = this.options.poolBoard.kickouts().find((k) => k.index === result.index)
    return {
      member: m.name,
      pool: refId(state.pool.ref),
      poolLabel: this.label(state.pool.ref),
      state: state.stateNumber,
      index: result.index,
      height: result.height,
      txid: result.txid === null ? null : toHex(result.txid),
      exitSats: record?.exitSats ?? 0n,
      continuation: result.createdPool === null ? null : refId(result.createdPool),
      continuationLabel: result.createdPool === null ? null : this.label(result.createdPool)
    }
  }

  // ------------------------------------------------------------------------------------------
  // rounds

  private async runPartition (request: PartitionRequest, statement: PartitionStatement, own: SignatureShare, deadlineMs: number, where: string,
    timing: { startMs: number, readMs: number } = { startMs: performance.now(), readMs: 0 }): Promise<Record<string, unknown>> {
    const id = statementId(statement)
    const what = `partition ${short(id)} of the ${where} among ${this.names(statement.actives)}`
    this.watchStatement(statement, request.roundId)
    const round = this.newRound('partition', request.roundId, statement.poolId, what, 'statement', id, statement.actives, deadlineMs)
    round.shares.set(toHex(own.member), own.signature)
    // Our own signature goes out too: any member can then check it against the statements it knows.
    const gatherFromMs = performance.now()
    await this.runRound(round, [{ kind: 'partition-request', request }, { kind: 'share', share: own }])
    const gatherMs = performance.now() - gatherFromMs
    this.throwUnlessComplete(round, `make ${what}`, (answered) => answered.length === 0 ? '' : `the ones who answered: ${answered.join(', ')}`)
    const complete = withStatementSignatures(statement, statement.actives.map((k) => ({ key: k, signature: round.shares.get(toHex(k))! })))
    const commitFromMs = performance.now()
    const result = await this.entries.propose(encodeStatementEntry(complete), BOARD_TIMEOUT_MS)
    const commitMs = performance.now() - commitFromMs
    const record = this.options.poolBoard.statement(id)
    if (result.outcome !== 'accepted' || record?.status !== 'accepted') {
      const conflict = record?.conflictsWith == null ? undefined : this.options.poolBoard.statement(record.conflictsWith)
      throw new PoolError('rejected', `every active signed ${what}, but the board refused it (index ${result.index}): ${result.reason}` +
        (conflict?.statement != null ? ` — the conflicting statement is ${this.describeStatement(conflict)}` : ''), { index: result.index })
    }
    const sub = this.options.poolBoard.currentState({ kind: 'partition', statementId: id })
    // Where the time went, for operators: the read, the signatures by gossip, the board's commit.
    this.options.logger.info({
      statement: toHex(id).slice(0, 16), index: result.index,
      readMs: Math.round(timing.readMs), gatherMs: Math.round(gatherMs), commitMs: Math.round(commitMs), totalMs: Math.round(performance.now() - timing.startMs)
    }, 'partition accepted')
    return {
      statementId: toHex(id),
      index: result.index,
      pool: refId({ kind: 'partition', statementId: id }),
      poolLabel: this.label({ kind: 'partition', statementId: id }),
      parent: where,
      actives: this.nameList(statement.actives),
      balances: sub === undefined ? {} : this.namedBalances(sub)
    }
  }

  private newRound (kind: RoundKind, roundId: Uint8Array, poolId: Uint8Array, what: string, shareKind: ShareKind, subject: Uint8Array, needed: Uint8Array[], deadlineMs: number): Round {
    if (this.stopped) throw new PoolError('busy', 'the node is stopping')
    if (this.rounds.size >= MAX_OWN_ROUNDS) throw new PoolError('busy', `${MAX_OWN_ROUNDS} rounds are already in progress on this node; try again when one ends`)
    const round: Round = {
      id: toHex(roundId), roundId, kind, what, poolId, shareKind, subject, needed,
      shares: new Map(), refusals: new Map(), startedMs: Date.now(), deadlineMs, wake: () => {}
    }
    this.rounds.set(round.id, round)
    return round
  }

  /** Publishes the round's messages, again every REPUBLISH_MS, until every member answered or the deadline. */
  private async runRound (round: Round, messages: GossipMessage[]): Promise<void> {
    try {
      const connected = new Set(this.options.connectedPeerIds())
      const peers = round.needed.filter((k) => !equalBytes(k, this.options.memberKey))
        .map((k) => this.members.byMemberKey(k)?.peerId).filter((p): p is string => p !== undefined && connected.has(p))
      await this.gossip.waitForSubscribers(peers, Math.min(SUBSCRIBER_WAIT_MS, Math.max(0, round.deadlineMs - Date.now())))
      while (!this.stopped) {
        for (const m of messages) await this.gossip.publish(m)
        if (settled(round)) break
        const waitMs = Math.min(REPUBLISH_MS, round.deadlineMs - Date.now())
        if (waitMs <= 0) break
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs)
          round.wake = () => { clearTimeout(timer); resolve() }
        })
        if (settled(round) || Date.now() >= round.deadlineMs) break
      }
    } finally {
      this.rounds.delete(round.id)
    }
  }

  private throwUnlessComplete (round: Round, action: string, advice: (answered: string[]) => string): void {
    if (round.shares.size === round.needed.length) return
    const me = toHex(this.options.memberKey)
    const missing = round.needed.filter((k) => !round.shares.has(toHex(k)) && !round.refusals.has(toHex(k)))
    const refusals: RefusalView[] = [...round.refusals.values()].sort((a, b) => byName(this.members.nameOf(a.member), this.members.nameOf(b.member))).map((r) => ({
      member: this.members.nameOf(r.member),
      code: r.code,
      reason: r.reason,
      conflict: r.conflict === null ? null : { statementId: toHex(r.conflict.statementId), index: r.conflict.index }
    }))
    const answered = this.nameList(round.needed.filter((k) => toHex(k) !== me && (round.shares.has(toHex(k)) || round.refusals.has(toHex(k)))))
    const parts: string[] = []
    if (refusals.length > 0) parts.push(refusals.map((r) => `${r.member} ${r.code === UNAVAILABLE ? 'could not answer' : 'refused'}: ${r.reason}`).join('; '))
    if (missing.length > 0) parts.push(`${this.names(missing)} did not sign before the deadline (${Math.round((round.deadlineMs - round.startedMs) / 1000)} s)`)
    const hint = missing.length > 0 ? advice(answered) : ''
    throw new PoolError('round-failed', `could not ${action}: ${parts.join('; ')}${hint === '' ? '' : `; ${hint}`}`, {
      missing: this.nameList(missing),
      signed: this.nameList(round.needed.filter((k) => round.shares.has(toHex(k)))),
      refusals
    })
  }

  /** Our own answer as a member, for our own round: a refusal is the command's error. */
  private async decideAsProposer (decide: () => Promise<SignatureShare | null>): Promise<SignatureShare> {
    try {
      const share = await decide()
      if (share === null) throw new PoolError('not-member', 'you are not one of the members asked to sign')
      return share
    } catch (err) {
      if (err instanceof WontSign) throw new PoolError('refused', err.message, { code: err.code })
      if (err instanceof RuleError) throw new PoolError('bad-request', err.message)
      throw err
    }
  }

  // ------------------------------------------------------------------------------------------
  // gossip (member side and watcher side)

  private onGossip (msg: GossipMessage, from: string): void {
    if (this.stopped) return
    switch (msg.kind) {
      case 'genesis-proposal': this.answer(msg.proposal.roundId, msg.proposal.deadlineMs, from, async () => this.decideGenesis(msg.proposal), ZERO_POOL_ID); break
      case 'update-request': this.answer(msg.request.roundId, msg.request.deadlineMs, from, async () => await this.decideUpdate(msg.request), msg.request.poolId); break
      case 'partition-request': this.onPartitionRequest(msg.request, from); break
      case 'share': this.onShare(msg.share, from); break
      case 'refusal': this.onRefusal(msg.refusal, from); break
      case 'evidence': this.onEvidence(msg.evidence, from); break
    }
  }

  /**
   * Works out (once per round) whether this member signs, and publishes the share or the refusal.
   * A request seen again (the proposer republished it) gets the same answer again.
   */
  private answer (roundId: Uint8Array, deadlineMs: number, from: string, decide: () => Promise<SignatureShare | null>, poolId: Uint8Array): void {
    const key = toHex(roundId)
    const kept = this.answers.get(key)
    if (kept !== undefined) {
      if (kept.msg !== null) void this.gossip.publish(kept.msg)
      return
    }
    if (this.answering.has(key) || this.rounds.has(key)) return
    if (this.tasks >= MAX_TASKS) { this.gossip.drop('busy', from, `more than ${MAX_TASKS} requests being answered`); return }
    this.tasks++
    this.answering.add(key)
    const run = async (): Promise<void> => {
      let msg: GossipMessage | null
      const fromMs = performance.now()
      try {
        const share = await decide()
        this.options.logger.debug({ round: key.slice(0, 16), decideMs: Math.round(performance.now() - fromMs), signed: share !== null }, 'answered a request')
        msg = share === null ? null : { kind: 'share', share }
      } catch (err) {
        if (err instanceof Forged) { this.gossip.drop('wrong-pool', from, err.message); return }
        if (!(err instanceof WontSign || err instanceof RuleError)) this.options.logger.warn({ round: key.slice(0, 16), err: (err as Error).message }, 'could not answer a request')
        const code = err instanceof WontSign ? err.code : err instanceof RuleError ? err.code : UNAVAILABLE
        const conflict = err instanceof WontSign ? err.conflict : null
        const refusal = signRefusal({ poolId, roundId, member: this.options.memberKey, code, reason: (err as Error).message, conflict }, this.options.memberSecret, randomBytes(32))
        msg = { kind: 'refusal', refusal }
        this.options.logger.info({ round: key.slice(0, 16), code, reason: refusal.reason }, 'refused to sign')
      }
      // Not asked (null) is remembered too, so a republished request costs nothing. A refusal for
      // want of the board (no leader yet) is not: the proposer's next republish gets a fresh try.
      if (msg?.kind !== 'refusal' || msg.refusal.code !== UNAVAILABLE) this.keepAnswer(key, msg, deadlineMs)
      if (msg !== null) await this.gossip.publish(msg)
    }
    run().catch((err: unknown) => { this.options.logger.warn({ err: (err as Error).message }, 'answering a request failed') })
      .finally(() => { this.tasks--; this.answering.delete(key) })
  }

  private keepAnswer (key: string, msg: GossipMessage | null, deadlineMs: number): void {
    const nowMs = Date.now()
    for (const [k, a] of this.answers) if (a.keepUntilMs < nowMs) this.answers.delete(k)
    while (this.answers.size >= MAX_ANSWERS_KEPT) this.answers.delete(this.answers.keys().next().value!)
    this.answers.set(key, { msg, keepUntilMs: Math.max(nowMs, Math.min(deadlineMs, nowMs + MAX_ROUND_TIMEOUT_MS)) + ANSWER_KEPT_MS })
  }

  private onPartitionRequest (request: PartitionRequest, from: string): void {
    const { poolBoard } = this.options
    if (poolBoard.poolId === null || !equalBytes(request.poolId, poolBoard.poolId)) { this.wrongPool(request.poolId, from); return }
    const active = indexOfKey(request.actives, this.options.memberKey) >= 0
    // An active checks the request's signature when it decides (checkPartitionRequest); a passive checks it here.
    if (!active && !poolBoard.signatureCache.verify(request.signature, partitionRequestSigningHash(request), request.proposer)) {
      this.gossip.drop('forged', from, `a partition request whose proposer ${short(request.proposer)}'s signature does not verify`)
      return
    }
    // Watch the statement whoever we are: its signatures may prove an equivocation.
    const parent = poolBoard.currentState(request.parent.pool)
    if (parent !== undefined && parent.stateNumber === request.parent.stateNumber) {
      try {
        this.watchStatement(buildPartitionStatement(parent, request.actives, request.newBalances, request.heightT), request.roundId)
      } catch { /* a request that does not derive a statement is refused below, by the actives */ }
    }
    if (!active) return // a passive: not asked
    this.answer(request.roundId, request.deadlineMs, from, async () => await this.decidePartition(request, { alreadyRead: false }), request.poolId)
  }

  private onShare (share: SignatureShare, from: string): void {
    const cache = this.options.poolBoard.signatureCache
    const round = this.rounds.get(toHex(share.roundId))
    if (round !== undefined) {
      if (!equalBytes(share.subject, round.subject) || share.kind !== round.shareKind) {
        this.gossip.drop('forged', from, `a share for round ${toHex(share.roundId).slice(0, 16)} over another ${share.kind} than the one being signed`)
        return
      }
      if (!round.needed.some((k) => equalBytes(k, share.member))) {
        this.gossip.drop('forged', from, `a share from ${short(share.member)}, who is not asked in round ${round.id.slice(0, 16)}`)
        return
      }
      if (!cache.verify(share.signature, share.subject, share.member)) {
        this.gossip.drop('forged', from, `a share whose signature by ${this.members.nameOf(share.member)} does not verify`)
        return
      }
      round.shares.set(toHex(share.member), share.signature)
      round.refusals.delete(toHex(share.member))
      if (settled(round)) round.wake()
    }
    if (share.kind === 'statement') this.watchShare(share, from)
  }

  private onRefusal (refusal: Refusal, from: string): void {
    const round = this.rounds.get(toHex(refusal.roundId))
    if (round === undefined) return // someone else's round
    if (!round.needed.some((k) => equalBytes(k, refusal.member))) {
      this.gossip.drop('forged', from, `a refusal from ${short(refusal.member)}, who is not asked in round ${round.id.slice(0, 16)}`)
      return
    }
    if (!this.options.poolBoard.signatureCache.verify(refusal.signature, refusalSigningHash(refusal), refusal.member)) {
      this.gossip.drop('forged', from, `a refusal whose signature by ${this.members.nameOf(refusal.member)} does not verify`)
      return
    }
    if (round.shares.has(toHex(refusal.member))) return
    round.refusals.set(toHex(refusal.member), refusal)
    if (settled(round)) round.wake()
  }

  private wrongPool (poolId: Uint8Array, from: string): void {
    // Before our board applied the genesis we cannot judge a message about the pool: not a fault.
    if (this.options.poolBoard.poolId === null) return
    this.gossip.drop('wrong-pool', from, `a message about pool ${short(poolId)}, not ${short(this.options.poolBoard.poolId)}`)
  }

  // ---- what this member signs ----

  private decideGenesis (proposal: GenesisProposal): SignatureShare {
    const { poolBoard, config, memberKey } = this.options
    const g = proposal.genesis
    if (poolBoard.genesis !== null) throw new WontSign('exists', `the board already holds pool ${short(poolBoard.poolId!)}`)
    const mine = g.members.find((m) => equalBytes(m.key, memberKey))
    if (mine === undefined) throw new WontSign('not-listed', 'the genesis does not list my member key')
    if (mine.peerId !== this.options.selfPeerId) throw new WontSign('not-listed', `the genesis binds my member key to peer ${mine.peerId}, not to mine`)
    const listed = new Set(g.members.map((m) => m.peerId))
    const configured = new Set(config.members.map((m) => m.peerId))
    const strangers = [...listed].filter((p) => !configured.has(p))
    const left = config.members.filter((m) => !listed.has(m.peerId)).map((m) => m.name)
    if (strangers.length > 0) throw new WontSign('rule', `the genesis lists peers that are not members: ${strangers.join(', ')}`)
    if (left.length > 0) throw new WontSign('rule', `the genesis leaves out members ${left.join(', ')}`)
    for (const m of g.members) {
      const known = this.members.byPeer(m.peerId)?.key
      if (known != null && !equalBytes(known, m.key)) throw new WontSign('rule', `the genesis gives ${this.members.byPeer(m.peerId)!.name} key ${short(m.key)}, but it answered hello with ${short(known)}`)
    }
    if (Date.now() > proposal.deadlineMs) throw new WontSign('late', 'the round\'s deadline has passed')
    const state0 = initialState(g)
    return makeSignatureShare({ kind: 'state', poolId: poolIdOf(g), roundId: proposal.roundId, subject: stateHash(state0), member: memberKey }, this.options.memberSecret, randomBytes(32))
  }

  /** Signs state N+1 if it is acceptable to this member and it signed no other N+1 for N; null if not asked. */
  private async decideUpdate (req: UpdateRequest): Promise<SignatureShare | null> {
    const { poolBoard, memberKey } = this.options
    // A node that has not applied the genesis yet reads the board before it judges.
    if (poolBoard.poolId === null) await this.read(Math.max(1, Math.min(READ_TIMEOUT_MS, req.deadlineMs - Date.now())))
    if (poolBoard.poolId === null) return null
    if (!equalBytes(req.poolId, poolBoard.poolId)) throw new Forged(`an update request for pool ${short(req.poolId)}, not ours`)
    let current = poolBoard.currentState(req.from.pool)
    // Behind the request (or its height)? Make sure we have applied everything committed first.
    if (current === undefined || current.stateNumber < req.from.stateNumber || req.heightT > poolBoard.chainHeight) {
      await this.read(Math.max(1, Math.min(READ_TIMEOUT_MS, req.deadlineMs - Date.now())))
      current = poolBoard.currentState(req.from.pool)
    }
    if (current !== undefined && indexOfKey(current.pool.members, memberKey) >= 0) this.refuseEquivocator(req.proposer)
    const decided = decideUpdateOn(poolBoard, memberKey, req, Date.now(), this.decisionNames)
    if (decided === null) return null
    current = decided.current
    const hash = decided.hash
    const kept = await this.memory.promiseState(current.pool.ref, current.stateNumber, { stateHash: hash, roundId: req.roundId, heightT: req.heightT, payment: req.payment })
    if (!kept.ok) {
      const p = kept.earlier.payment
      throw new WontSign('already-signed', `I already signed another state ${current.stateNumber + 1} of the ${this.label(current.pool.ref)} (${this.members.nameOf(p.payer)} pays ${this.members.nameOf(p.payee)} ${p.amountSats} sats); I sign one state N+1 per state N`)
    }
    return makeSignatureShare({ kind: 'state', poolId: req.poolId, roundId: req.roundId, subject: hash, member: memberKey }, this.options.memberSecret, randomBytes(32))
  }

  /**
   * Signs the statement a partition request asks for, after a linearizable read, unless a
   * committed statement already spends one of its outputs (refused, naming that statement) or this
   * member signed another statement spending its own Withdraw output. Null if not an active.
   */
  private async decidePartition (req: PartitionRequest, opts: { alreadyRead: boolean }): Promise<SignatureShare | null> {
    const { poolBoard, memberKey } = this.options
    if (indexOfKey(req.actives, memberKey) < 0) return null
    this.refuseEquivocator(req.proposer)
    // A statement another member proved my board lacks needs no read to refuse (the board may be unreadable).
    if (!opts.alreadyRead) this.refuseReported(req)
    if (!opts.alreadyRead) await this.read(Math.max(1, Math.min(READ_TIMEOUT_MS, req.deadlineMs - Date.now())))
    const decided = decidePartitionOn(poolBoard, memberKey, req, Date.now(), this.decisionNames)
    if (decided === null) return null
    const { statement, id, mine } = decided
    const defenses = this.options.defenses
    if (defenses !== undefined) {
      const reported = defenses.reportedConflict(statement)
      if (reported !== null) throw new WontSign(reported.code, reported.message, reported.conflict)
      try {
        await defenses.beforeSign(statement, req.deadlineMs)
      } catch (err) {
        if (err instanceof DefenseRefusal) throw new WontSign(err.code, err.message, err.conflict)
        throw err
      }
    }
    const kept = await this.memory.promiseStatement(statement.spent[mine], statement)
    if (!kept.ok) {
      const e = kept.earlier
      const onBoard = poolBoard.statement(e.statementId)
      throw new WontSign('already-signed', `I already signed statement ${short(e.statementId)} (${this.names(e.statement.actives)}${onBoard === undefined ? ', not on the board' : `; ${onBoard.status} at board index ${onBoard.index}`}) spending my Withdraw output of the ${this.stateLabel(statement.parent)}; I never sign a second one`,
        onBoard?.status === 'accepted' ? { statementId: e.statementId, index: onBoard.index } : null)
    }
    return makeSignatureShare({ kind: 'statement', poolId: req.poolId, roundId: req.roundId, subject: id, member: memberKey }, this.options.memberSecret, randomBytes(32))
  }

  /** Refuses at once a request whose statement conflicts with one another member proved this node's board lacks. */
  private refuseReported (req: PartitionRequest): void {
    const defenses = this.options.defenses
    const parent = this.options.poolBoard.currentState(req.parent.pool)
    if (defenses === undefined || parent === undefined || parent.stateNumber !== req.parent.stateNumber) return
    let statement: PartitionStatement
    try {
      statement = buildPartitionStatement(parent, req.actives, req.newBalances, req.heightT)
    } catch {
      return // refused below, once the board is read
    }
    const reported = defenses.reportedConflict(statement)
    if (reported !== null) throw new WontSign(reported.code, reported.message, reported.conflict)
  }

  private refuseEquivocator (proposer: Uint8Array): void {
    // Our own request goes out regardless: the other members will refuse it, and say why.
    if (equalBytes(proposer, this.options.memberKey) || !this.evidenceOn) return
    if (this.options.poolBoard.equivocators().some((k) => equalBytes(k, proposer))) {
      throw new WontSign('equivocator', `${this.members.nameOf(proposer)} is proven to have signed conflicting statements (evidence on the board); I do not sign its requests`)
    }
  }

  // ---- equivocation ----

  private watchStatement (statement: PartitionStatement, roundId: Uint8Array): void {
    const id = statementId(statement)
    const key = toHex(id)
    const nowMs = Date.now()
    if (!this.watched.has(key)) {
      for (const [k, w] of this.watched) if (w.keepUntilMs < nowMs) this.watched.delete(k)
      while (this.watched.size >= MAX_STATEMENTS_WATCHED) this.watched.delete(this.watched.keys().next().value!)
      this.watched.set(key, { id, statement: { ...statement, signatures: [] }, signatures: new Map(), keepUntilMs: nowMs + MAX_ROUND_TIMEOUT_MS + ANSWER_KEPT_MS })
    }
    while (this.roundStatement.size >= MAX_STATEMENTS_WATCHED) this.roundStatement.delete(this.roundStatement.keys().next().value!)
    this.roundStatement.set(toHex(roundId), key)
    // Shares that arrived before their request.
    for (let i = this.earlyShares.length - 1; i >= 0; i--) {
      const s = this.earlyShares[i]
      if (equalBytes(s.roundId, roundId)) {
        this.earlyShares.splice(i, 1)
        this.watchShare(s, '(early)')
      }
    }
  }

  /** A statement signature seen by gossip: does it, with a signature we know, prove an equivocation? */
  private watchShare (share: SignatureShare, from: string): void {
    const key = this.roundStatement.get(toHex(share.roundId))
    const w = key === undefined ? undefined : this.watched.get(key)
    if (w === undefined) {
      if (this.earlyShares.length >= MAX_EARLY_SHARES) this.earlyShares.shift()
      this.earlyShares.push(share)
      return
    }
    if (!equalBytes(share.subject, w.id) || indexOfKey(w.statement.actives, share.member) < 0) return
    if (!this.options.poolBoard.signatureCache.verify(share.signature, share.subject, share.member)) {
      this.gossip.drop('forged', from, `a statement signature by ${this.members.nameOf(share.member)} that does not verify`)
      return
    }
    w.signatures.set(toHex(share.member), share.signature)
    const cache = this.options.poolBoard.signatureCache
    for (const c of this.options.poolBoard.conflictsFor(w.statement.spent)) {
      if (equalBytes(c.id, w.id) || c.statement === null) continue
      const other = statementSignatureOf(c.statement, share.member)
      if (other === undefined || !cache.verify(other, c.id, share.member)) continue
      this.foundEvidence(buildEvidence(share.member, c.statement, other, w.statement, share.signature, c.id, w.id), 'detected')
    }
    for (const o of this.watched.values()) {
      if (o === w) continue
      const other = o.signatures.get(toHex(share.member))
      if (other === undefined || conflictingOutpoints(o.statement, w.statement).length === 0) continue
      this.foundEvidence(buildEvidence(share.member, o.statement, other, w.statement, share.signature, o.id, w.id), 'detected')
    }
  }

  private onEvidence (ev: EquivocationEvidence, from: string): void {
    if (!this.evidenceOn) return
    const { poolBoard } = this.options
    const poolId = poolBoard.poolId
    if (poolId === null) return
    // Through the signature cache: a signature is checked once per node.
    const v = verifyEvidence(ev, poolId, poolBoard.signatureCache.verifier)
    if (!v.ok) { this.gossip.drop('forged', from, `evidence: ${v.reason}`); return }
    this.foundEvidence(ev, 'gossip')
  }

  /** Makes sure the board records `ev`: gossip it, and propose it (the leader at once, others if it is still missing later). */
  private foundEvidence (ev: EquivocationEvidence, source: 'detected' | 'gossip'): void {
    if (!this.evidenceOn) return
    this.options.defenses?.onEvidence(ev, source === 'detected' ? 'detected' : 'learned', source === 'detected' ? 'its signatures on both, seen by gossip' : 'evidence sent by another member')
    const id = toHex(evidenceId(ev))
    if (this.boardHasEvidence(id) || this.pendingEvidence.has(id)) return
    if (this.pendingEvidence.size >= MAX_PENDING_EVIDENCE) return
    this.pendingEvidence.set(id, ev)
    this.options.logger.warn({ member: this.members.nameOf(ev.member), first: toHex(statementId(ev.first)), second: toHex(statementId(ev.second)), source }, 'equivocation: a member signed two conflicting statements')
    if (source === 'detected') this.gossipEvidenceOnce(ev)
    const propose = (): void => { void this.proposeEvidence(id) }
    if (this.options.board.role === 'leader') propose()
    else {
      const timer = setTimeout(() => { this.timers.delete(timer); propose() }, EVIDENCE_FALLBACK_MS)
      timer.unref()
      this.timers.add(timer)
    }
  }

  private async proposeEvidence (id: string): Promise<void> {
    const ev = this.pendingEvidence.get(id)
    if (ev === undefined || this.stopped) return
    try {
      if (this.options.board.role !== 'leader') await this.read()
      if (this.boardHasEvidence(id)) return
      const result = await this.entries.propose(encodeEvidenceEntry(ev), BOARD_TIMEOUT_MS)
      this.options.logger.info({ evidence: id.slice(0, 16), outcome: result.outcome, reason: result.reason, index: result.index }, 'proposed equivocation evidence')
    } catch (err) {
      this.options.logger.warn({ evidence: id.slice(0, 16), err: (err as Error).message }, 'could not propose equivocation evidence')
    } finally {
      this.pendingEvidence.delete(id)
    }
  }

  private gossipEvidenceOnce (ev: EquivocationEvidence): void {
    const id = toHex(evidenceId(ev))
    if (this.gossipedEvidence.has(id)) return
    if (this.gossipedEvidence.size >= MAX_GOSSIPED_EVIDENCE_IDS) this.gossipedEvidence.clear()
    this.gossipedEvidence.add(id)
    void this.gossip.publish({ kind: 'evidence', evidence: ev })
  }

  private boardHasEvidence (idHex: string): boolean {
    return this.options.poolBoard.evidence().some((e) => toHex(e.id) === idHex)
  }

  // ------------------------------------------------------------------------------------------
  // helpers

  /** A linearizable read: everything committed before now is applied on this node. */
  private async read (timeoutMs = READ_TIMEOUT_MS): Promise<void> {
    try {
      await this.options.board.linearizableRead(timeoutMs)
    } catch (err) {
      throw new PoolError('timeout', `cannot read the board: ${(err as Error).message}`)
    }
  }

  private requireHome (key: Uint8Array, who: string): Home {
    const { poolBoard } = this.options
    if (poolBoard.genesis === null) throw new PoolError('no-pool', 'the board holds no pool yet: create one with poolboard pool create')
    const home = homeOf(poolBoard, key)
    if (home === null) {
      const kicked = poolBoard.kickouts().find((k) => equalBytes(k.member, key))
      if (kicked !== undefined) throw new PoolError('closed', `${who === 'you' ? 'you were' : `${who} was`} kicked out of the ${this.label(kicked.pool)} at board index ${kicked.index}: no funds left in the pool`)
      throw new PoolError('not-member', `${who === 'you' ? 'you are' : `${who} is`} not a member of the pool`)
    }
    return home
  }

  private openState (home: Home): PoolState {
    const { poolBoard } = this.options
    const state = poolBoard.currentState(home.view.ref)!
    if (home.view.status === 'frozen') {
      const parts = poolBoard.partitionsOf(state).map((s) => `${short(s.id)} (${this.names(s.statement?.actives ?? [])})`)
      throw new PoolError('frozen', `your pool, the ${this.label(home.view.ref)}, is frozen: its state ${state.stateNumber} was partitioned by statement ${parts.join(', ')}; ` +
        'it takes no new state. Move on in a partition of your own: poolboard pool partition --with MEMBERS')
    }
    return state
  }

  private resolve (text: string): { name: string, key: Uint8Array } {
    try {
      return this.members.resolve(text)
    } catch (err) {
      throw new PoolError('unknown-member', (err as Error).message)
    }
  }

  /** A pool for people: `root pool`, `partition 9f3a21c0d4e5b6a7`, `partition 9f3a21c0d4e5b6a7 without node3`. */
  /** How decide.ts names things in this node's refusals. */
  private get decisionNames (): DecisionNames {
    return { label: (r) => this.label(r), stateLabel: (r) => this.stateLabel(r), describeStatement: (c) => this.describeStatement(c), ownerOf: (p, o) => this.ownerOf(p, o) }
  }

  private label (ref: PoolRef): string {
    return poolLabeller(this.options.poolBoard, (k) => this.members.nameOf(k))(ref)
  }

  private stateLabel (ref: StateRef): string {
    return `${this.label(ref.pool)} state ${ref.stateNumber}`
  }

  /** Member names for people, in natural order (node2 before node10). */
  private names (keys: readonly Uint8Array[]): string {
    return this.nameList(keys).join(', ')
  }

  private nameList (keys: readonly Uint8Array[]): string[] {
    return keys.map((k) => this.members.nameOf(k)).sort(byName)
  }

  private namedBalances (state: PoolState): Record<string, bigint> {
    return Object.fromEntries(state.pool.members.map((k, i) => [this.members.nameOf(k), state.balances[i]] as const).sort(([a], [b]) => byName(a, b)))
  }

  /** "9f3a21c0d4e5b6a7 (node1, node2, node3; accepted at board index 14)". */
  private describeStatement (c: StatementRecord): string {
    const actives = c.statement === null ? '' : `${this.names(c.statement.actives)}; `
    return `${short(c.id)} (${actives}${c.status} at board index ${c.index})`
  }

  private ownerOf (parent: PoolState, o: Outpoint): string {
    const outpoints = withdrawOutpoints(parent)
    const i = outpoints.findIndex((x) => equalOutpoints(x, o))
    return i < 0 ? 'an unknown member' : this.members.nameOf(parent.pool.members[i])
  }
}

export interface StatementSummary {
  statementId: string
  parent: string
  actives: string[]
  balances: Record<string, bigint>
  board: { status: string, index: number } | null
}

/** A request that cannot be genuine (another pool's id): dropped, not refused. */
class Forged extends Error {}


/** Every member signed or refused for good; a member that could not decide yet may still sign. */
function settled (round: Round): boolean {
  let final = 0
  for (const r of round.refusals.values()) if (r.code !== UNAVAILABLE) final++
  return round.shares.size + final >= round.needed.length
}

function roundTimeout (timeoutMs: number | undefined): number {
  const t = timeoutMs ?? DEFAULT_ROUND_TIMEOUT_MS
  if (!Number.isSafeInteger(t) || t < 100 || t > MAX_ROUND_TIMEOUT_MS) throw new PoolError('bad-request', `timeout: expected 100 to ${MAX_ROUND_TIMEOUT_MS} ms, got ${String(timeoutMs)}`)
  return t
}
