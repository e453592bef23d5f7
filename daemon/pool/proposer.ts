import { randomBytes } from 'node:crypto'
import {
  encodeGenesisEntry,
  encodeKickoutEntry,
  encodeMergeEntry,
  encodeStateEntry,
  encodeStatementEntry
} from '../../board/entries.js'
import type { PoolBoard } from '../../board/pool-board.js'
import { compareBytes, equalBytes, toHex } from '../../protocol/bytes.js'
import { indexOfKey, short, sumSats } from '../../protocol/common.js'
import { makeGenesis, poolIdOf, type Genesis } from '../../protocol/genesis.js'
import { sha256 } from '../../protocol/hash.js'
import {
  signPartitionRequest,
  signUpdateRequest,
  type PartitionRequest,
  type SignatureShare,
  type UpdateRequest
} from '../../protocol/requests.js'
import {
  applyPayment,
  checkPartitionRequest,
  initialState,
  makePartitionRequest,
  makeUpdateRequest,
  RuleError
} from '../../protocol/rules.js'
import { stateHash, withdrawOutpoints, type PoolState, type SignedState } from '../../protocol/state.js'
import { statementId, withStatementSignatures, type PartitionStatement } from '../../protocol/statement.js'
import type { Logger } from '../host/log.js'
import type { GenesisProposal } from '../net/gossip.js'
import type { PoolMembers } from './members.js'
import { BOARD_TIMEOUT_MS, PoolError, type EntryProposer, type BoardRead } from './propose.js'
import { roundTimeout, type ProposerRounds } from './rounds.js'
import { WontSign, type MemberSigner } from './signer.js'
import {
  DEFAULT_BALANCE_SATS,
  DEFAULT_KICKOUT_DELAY_BLOCKS,
  homeOf,
  homesOf,
  kickoutHeight,
  refId,
  type Home
} from './view.js'
import type { CreateResult, KickResult, PartitionResult, PayResult } from './results.js'
import type { PoolWords } from './words.js'
import { traceHop } from './trace.js'
import { requireAnotherActive, requireBalance, requireConnected, type Reachability } from './before-signing.js'

/**
 * The pool commands of this member (create, pay, partition, kick): each checks what it can
 * against the board, signs its own share with the signer's rules, runs a round for the others'
 * shares and proposes the entry; what it answers is what this node applied.
 */

export interface PoolProposerOptions {
  memberKey: Uint8Array
  memberSecret: Uint8Array
  poolBoard: PoolBoard
  members: PoolMembers
  entries: EntryProposer
  rounds: ProposerRounds
  signer: MemberSigner
  read: BoardRead
  words: PoolWords
  /** Our own partition's statement is watched too (the evidence defense). */
  watchStatement: (statement: PartitionStatement, roundId: Uint8Array) => void
  /** Which members are connected now: a round that needs one that is not fails before signing. */
  reachability: Reachability
  logger: Logger
}

export class PoolProposer {
  constructor(private readonly options: PoolProposerOptions) {}

  /** Creates the pool: every member answers hello, signs state 0 of the genesis; the genesis entry is proposed. */
  async create(params: {
    balanceSats?: bigint
    kickoutDelayBlocks?: number
    timeoutMs?: number
  }): Promise<CreateResult> {
    const timeoutMs = roundTimeout(params.timeoutMs)
    const deadlineMs = Date.now() + timeoutMs
    await this.options.read()
    const { poolBoard } = this.options
    if (poolBoard.genesis !== null)
      throw new PoolError('exists', `the board already holds pool ${short(poolBoard.poolId!)}`)
    const balanceSats = params.balanceSats ?? DEFAULT_BALANCE_SATS
    const missing = await this.options.members.helloAll(deadlineMs)
    if (missing.length > 0) {
      throw new PoolError(
        'round-failed',
        `members ${missing.map((m) => m.name).join(', ')} did not answer hello within ${timeoutMs} ms: every member must be online to create the pool`,
        { missing: missing.map((m) => m.name) }
      )
    }
    const roundId = randomBytes(32)
    let genesis: Genesis
    try {
      genesis = makeGenesis({
        members: this.options.members.list().map((m) => ({ key: m.key!, peerId: m.peerId, balanceSats })),
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
    const own = this.options.signer.decideGenesis(proposal)
    const round = this.options.rounds.open(
      'genesis',
      roundId,
      poolId,
      'state 0 of the new pool',
      'state',
      stateHash(state0),
      state0.pool.members,
      deadlineMs
    )
    round.shares.set(toHex(this.options.memberKey), own.signature)
    await this.options.rounds.run(round, [{ kind: 'genesis-proposal', proposal }])
    this.options.rounds.throwUnlessComplete(
      round,
      'create the pool',
      () => 'every member must be online to create the pool'
    )
    const signed: SignedState = {
      state: state0,
      signatures: state0.pool.members.map((k) => round.shares.get(toHex(k))!)
    }
    const result = await this.options.entries.propose(encodeGenesisEntry(genesis, signed), BOARD_TIMEOUT_MS)
    if (result.outcome !== 'accepted')
      throw new PoolError('rejected', `the board refused the genesis: ${result.reason}`)
    this.options.logger.info({ poolId: toHex(poolId), index: result.index }, 'pool created')
    return {
      poolId: toHex(poolId),
      index: result.index,
      members: this.options.words.nameList(state0.pool.members),
      balances: this.options.words.namedBalances(state0),
      kickoutDelayBlocks: genesis.kickoutDelayBlocks,
      creationHeight: genesis.creationHeight
    }
  }

  /** Pays `amountSats` to another member of this member's current (sub-)pool: state N+1, signed by every member of it. */
  async pay(params: { to: string; amountSats: bigint; timeoutMs?: number }): Promise<PayResult> {
    const timeoutMs = roundTimeout(params.timeoutMs)
    const deadlineMs = Date.now() + timeoutMs
    await this.options.read()
    const me = this.options.memberKey
    const home = this.requireHome(me, 'you')
    const current = this.openState(home)
    const payee = this.resolve(params.to)
    const where = this.options.words.label(current.pool.ref)
    if (indexOfKey(current.pool.members, payee.key) < 0) {
      const theirs = homeOf(this.options.poolBoard, payee.key)
      throw new PoolError(
        'not-member',
        `${payee.name} is not a member of your pool (the ${where}; its members: ${this.options.words.names(current.pool.members)})` +
          `${theirs === null ? '' : `; ${payee.name}'s funds are in the ${this.options.words.label(theirs.view.ref)}`}: a payment moves sats inside one pool`
      )
    }
    if (typeof params.amountSats !== 'bigint' || params.amountSats <= 0n)
      throw new PoolError('bad-request', `amount: expected a positive number of sats, got ${String(params.amountSats)}`)
    requireBalance(current.balances[indexOfKey(current.pool.members, me)], params.amountSats, payee.name, where)
    const payment = { payer: me, payee: payee.key, amountSats: params.amountSats }
    let heightT = Math.max(current.heightT, this.options.poolBoard.chainHeight)
    // A round that failed left our promise for state N+1: retrying the same payment signs the same state again.
    const earlier = await this.options.signer.signedState(current.pool.ref, current.stateNumber)
    if (earlier !== undefined) {
      const same =
        equalBytes(earlier.payment.payer, payment.payer) &&
        equalBytes(earlier.payment.payee, payment.payee) &&
        earlier.payment.amountSats === payment.amountSats
      if (!same) {
        throw new PoolError(
          'refused',
          `you already signed a different state ${current.stateNumber + 1} of the ${where} (${this.options.members.nameOf(earlier.payment.payer)} pays ${this.options.members.nameOf(earlier.payment.payee)} ${earlier.payment.amountSats} sats) that never reached the board; ` +
            `a member signs one state N+1 per state N: retry that payment, or partition with the members who are online`
        )
      }
      heightT = earlier.heightT
    }
    let request: UpdateRequest
    let proposed: PoolState
    try {
      request = signUpdateRequest(
        makeUpdateRequest(current, { proposer: me, payment, heightT, deadlineMs, roundId: randomBytes(32) }),
        this.options.memberSecret,
        randomBytes(32)
      )
      proposed = applyPayment(current, payment, heightT)
    } catch (err) {
      if (err instanceof RuleError) throw new PoolError('bad-request', err.message)
      throw err
    }
    const what = `state ${proposed.stateNumber} of the ${where}`
    requireConnected(current.pool.members, me, this.options.reachability, `make ${what}`, (online) =>
      online.length === 0
        ? 'no other member of the pool is online: wait for them'
        : `to go on without them, partition with the online ones: poolboard pool partition --with ${online.join(',')}`
    )
    this.options.logger.debug({ what, needed: this.options.words.nameList(current.pool.members) }, 'starting a round')
    // Our own share is decided while the members decide theirs; the round fails if we refuse.
    const own = this.decideAsProposer(async () => await this.options.signer.decideUpdate(request))
    own.catch(() => {}) // the round takes the failure; this keeps it handled if the round cannot open
    const round = this.options.rounds.open(
      'update',
      request.roundId,
      current.pool.poolId,
      what,
      'state',
      stateHash(proposed),
      current.pool.members,
      deadlineMs
    )
    traceHop(this.options.logger, request.roundId, 'asking')
    await this.options.rounds.run(round, [{ kind: 'update-request', request }], own)
    traceHop(this.options.logger, request.roundId, 'gathered')
    this.options.rounds.throwUnlessComplete(round, `make ${what}`, (answered) =>
      answered.length === 0
        ? 'nobody answered; to go on without the members who are offline, partition with the online ones: poolboard pool partition --with MEMBERS'
        : `to go on without them, partition with the online ones: poolboard pool partition --with ${answered.join(',')}`
    )
    const signed: SignedState = {
      state: proposed,
      signatures: proposed.pool.members.map((k) => round.shares.get(toHex(k))!)
    }
    const result = await this.options.entries.propose(encodeStateEntry(signed), BOARD_TIMEOUT_MS)
    traceHop(this.options.logger, request.roundId, 'applied')
    if (result.outcome !== 'accepted')
      throw new PoolError('rejected', `every member signed ${what}, but the board refused it: ${result.reason}`)
    return {
      pool: refId(proposed.pool.ref),
      poolLabel: where,
      state: proposed.stateNumber,
      index: result.index,
      payment: { from: this.options.members.nameOf(me), to: payee.name, amountSats: params.amountSats },
      balances: this.options.words.namedBalances(proposed),
      totalSats: sumSats(proposed.balances)
    }
  }

  /**
   * Partitions this member's current (sub-)pool among `with` and this member (the actives), at its
   * current state; passives are untouched. Balances stay as they are unless `pay` moves sats from
   * this member to other actives. Accepted once the statement is committed and applied without conflict.
   */
  async partition(params: {
    with: string[]
    pay?: Array<{ to: string; amountSats: bigint }>
    timeoutMs?: number
  }): Promise<PartitionResult> {
    const timeoutMs = roundTimeout(params.timeoutMs)
    const startMs = performance.now()
    const deadlineMs = Date.now() + timeoutMs
    await this.options.read()
    const readMs = performance.now() - startMs
    const me = this.options.memberKey
    const home = this.requireHome(me, 'you')
    const parent = home.view
    const parentState = this.options.poolBoard.currentState(parent.ref)!
    const where = `${this.options.words.label(parent.ref)} state ${parent.stateNumber}`
    const actives = new Map<string, Uint8Array>([[toHex(me), me]])
    const homeIn = homesOf(this.options.poolBoard)
    for (const text of params.with) {
      const m = this.resolve(text)
      const theirs = homeIn(m.key)
      if (theirs === null) throw new PoolError('not-member', `${m.name} has no funds in any pool (kicked out)`)
      if (refId(theirs.view.ref) !== refId(parent.ref)) {
        throw new PoolError(
          'not-member',
          `${m.name}'s funds are in the ${this.options.words.label(theirs.view.ref)}, yours in the ${this.options.words.label(parent.ref)}: a partition spends the Withdraw outputs of one pool state, so every active must be in the same pool`
        )
      }
      actives.set(toHex(m.key), m.key)
    }
    const activeKeys = [...actives.values()].sort(compareBytes)
    requireAnotherActive(activeKeys, me, params.with)
    const balances = activeKeys.map((k) => parentState.balances[indexOfKey(parentState.pool.members, k)])
    for (const p of params.pay ?? []) {
      const to = this.resolve(p.to)
      const i = indexOfKey(activeKeys, to.key)
      if (i < 0)
        throw new PoolError(
          'bad-request',
          `--pay ${to.name}: not one of the actives (${this.options.words.names(activeKeys)})`
        )
      if (equalBytes(to.key, me)) throw new PoolError('bad-request', '--pay: you cannot pay yourself')
      if (typeof p.amountSats !== 'bigint' || p.amountSats <= 0n)
        throw new PoolError('bad-request', `--pay ${to.name}: expected a positive number of sats`)
      const mine = indexOfKey(activeKeys, me)
      if (balances[mine] < p.amountSats)
        throw new PoolError(
          'bad-request',
          `--pay: you hold ${balances[mine]} sats, cannot pay ${p.amountSats} to ${to.name}`
        )
      balances[mine] -= p.amountSats
      balances[i] += p.amountSats
    }
    let heightT = Math.max(parentState.heightT, this.options.poolBoard.chainHeight)
    const myOutpoint = withdrawOutpoints(parentState)[indexOfKey(parentState.pool.members, me)]
    const earlier = await this.options.signer.signedStatement(myOutpoint)
    if (earlier !== undefined) {
      const e = earlier.statement
      const same =
        e.actives.length === activeKeys.length &&
        e.actives.every((k, i) => equalBytes(k, activeKeys[i]) && e.newBalances[i] === balances[i])
      const accepted = this.options.poolBoard.statement(earlier.statementId)
      if (!same && accepted?.status !== 'accepted') {
        throw new PoolError(
          'refused',
          `you already signed statement ${short(earlier.statementId)} (${this.options.words.names(e.actives)}) spending your Withdraw output of the ${where}, and it never reached the board; ` +
            `a member never signs two statements spending one output: only that one can still be completed (poolboard pool partition --with ${this.options.words.nameList(e.actives.filter((k) => !equalBytes(k, me))).join(',')})`
        )
      }
      if (same) heightT = e.heightT
    }
    let request: PartitionRequest
    let statement: PartitionStatement
    try {
      request = signNewPartitionRequest(
        parentState,
        { proposer: me, actives: activeKeys, newBalances: balances, heightT, deadlineMs },
        this.options.memberSecret
      )
      statement = checkPartitionRequest(parentState, request)
    } catch (err) {
      if (err instanceof RuleError) throw new PoolError('bad-request', err.message)
      throw err
    }
    requireConnected(activeKeys, me, this.options.reachability, `partition the ${where}`, (online) =>
      online.length === 0 ? '' : `the actives who are online: ${online.join(', ')}`
    )
    this.options.logger.debug(
      { what: `partition of the ${where}`, needed: this.options.words.nameList(activeKeys) },
      'starting a round'
    )
    // Our own share (its defenses included) is decided while the members decide theirs; the round fails if we refuse.
    const own = this.decideAsProposer(
      async () =>
        await this.options.signer.decidePartition(request, {
          alreadyRead: true,
          derived: { parent: parentState, statement }
        })
    )
    own.catch(() => {}) // the round takes the failure; this keeps it handled if the round cannot open
    return await this.runPartition(request, statement, own, deadlineMs, where, { startMs, readMs })
  }

  /** Kicks `member` out of its current pool with its kick-out Withdraw K(N,u); the board refuses before T + X + 1. */
  /**
   * Merges the frozen pool `pool` (the root by default) back together: state N+1 holding every
   * member's balance where it is now, signed by every member of the pool (merge.ts).
   */
  async merge(params: { pool?: string; timeoutMs?: number }): Promise<Record<string, unknown>> {
    const timeoutMs = roundTimeout(params.timeoutMs)
    const deadlineMs = Date.now() + timeoutMs
    await this.options.read()
    const merger = this.options.signer.merger
    const plan = merger.plan(merger.resolvePool(params.pool), deadlineMs)
    const { request, proposed, what } = plan
    // As for a payment: a merge needs every member, so one that is not connected fails it before anyone signs.
    requireConnected(
      proposed.pool.members,
      this.options.memberKey,
      this.options.reachability,
      `make ${what}`,
      () => 'a merge needs every member of the pool online; try again when they are'
    )
    const own = await this.decideAsProposer(async () => await this.options.signer.decideMerge(request))
    const round = this.options.rounds.open(
      'merge',
      request.roundId,
      request.poolId,
      what,
      'state',
      stateHash(proposed),
      proposed.pool.members,
      deadlineMs
    )
    round.shares.set(toHex(this.options.memberKey), own.signature)
    await this.options.rounds.run(round, [{ kind: 'merge-request', request }])
    this.options.rounds.throwUnlessComplete(
      round,
      `make ${what}`,
      () => 'a merge needs every member of the pool online; try again when they are'
    )
    const signed: SignedState = {
      state: proposed,
      signatures: proposed.pool.members.map((k) => round.shares.get(toHex(k))!)
    }
    const result = await this.options.entries.propose(encodeMergeEntry(signed), BOARD_TIMEOUT_MS)
    if (result.outcome !== 'accepted')
      throw new PoolError('rejected', `every member signed ${what}, but the board refused it: ${result.reason}`)
    return merger.summary(plan, result.index)
  }

  async kick(params: { member: string }): Promise<KickResult> {
    await this.options.read()
    const m = this.resolve(params.member)
    const home = this.requireHome(m.key, m.name)
    const state = this.options.poolBoard.currentState(home.view.ref)!
    const where = `${this.options.words.label(state.pool.ref)} state ${state.stateNumber}`
    const result = await this.options.entries.propose(
      encodeKickoutEntry({ pool: state.pool.ref, stateNumber: state.stateNumber, member: m.key }),
      BOARD_TIMEOUT_MS
    )
    if (result.outcome !== 'accepted') {
      const { validFromHeight } = kickoutHeight(state, m.key)
      const chain = this.options.poolBoard.chainHeight
      const hint =
        chain < validFromHeight
          ? `; ${validFromHeight - chain} more block${validFromHeight - chain === 1 ? '' : 's'} to go (poolboard chain mine ${validFromHeight - chain})`
          : ''
      throw new PoolError(
        'rejected',
        `the board refused the kick-out of ${m.name} from the ${where} (index ${result.index}): ${result.reason}${hint}`,
        { validFromHeight, chainHeight: chain, index: result.index }
      )
    }
    const record = this.options.poolBoard.kickouts().find((k) => k.index === result.index)
    return {
      member: m.name,
      pool: refId(state.pool.ref),
      poolLabel: this.options.words.label(state.pool.ref),
      state: state.stateNumber,
      index: result.index,
      height: result.height,
      txid: result.txid === null ? null : toHex(result.txid),
      exitSats: record?.exitSats ?? 0n,
      continuation: result.createdPool === null ? null : refId(result.createdPool),
      continuationLabel: result.createdPool === null ? null : this.options.words.label(result.createdPool)
    }
  }

  async runPartition(
    request: PartitionRequest,
    statement: PartitionStatement,
    own: SignatureShare | Promise<SignatureShare>,
    deadlineMs: number,
    where: string,
    timing: { startMs: number; readMs: number } = { startMs: performance.now(), readMs: 0 }
  ): Promise<PartitionResult> {
    const id = statementId(statement)
    const what = `partition ${short(id)} of the ${where} among ${this.options.words.names(statement.actives)}`
    this.options.watchStatement(statement, request.roundId)
    const round = this.options.rounds.open(
      'partition',
      request.roundId,
      statement.poolId,
      what,
      'statement',
      id,
      statement.actives,
      deadlineMs
    )
    // Our own signature goes out too: any member can then check it against the statements it knows.
    const gatherFromMs = performance.now()
    traceHop(this.options.logger, request.roundId, 'asking', { readMs: Math.round(timing.readMs) })
    await this.options.rounds.run(round, [{ kind: 'partition-request', request }], Promise.resolve(own))
    const gatherMs = performance.now() - gatherFromMs
    traceHop(this.options.logger, request.roundId, 'gathered')
    this.options.rounds.throwUnlessComplete(round, `make ${what}`, (answered) =>
      answered.length === 0 ? '' : `the ones who answered: ${answered.join(', ')}`
    )
    const complete = withStatementSignatures(
      statement,
      statement.actives.map((k) => ({ key: k, signature: round.shares.get(toHex(k))! }))
    )
    const commitFromMs = performance.now()
    const result = await this.options.entries.propose(encodeStatementEntry(complete), BOARD_TIMEOUT_MS)
    const commitMs = performance.now() - commitFromMs
    traceHop(this.options.logger, request.roundId, 'applied')
    const record = this.options.poolBoard.statement(id)
    if (result.outcome !== 'accepted' || record?.status !== 'accepted') {
      const conflict =
        record?.conflictsWith == null ? undefined : this.options.poolBoard.statement(record.conflictsWith)
      throw new PoolError(
        'rejected',
        `every active signed ${what}, but the board refused it (index ${result.index}): ${result.reason}` +
          (conflict?.statement != null
            ? ` — the conflicting statement is ${this.options.words.describeStatement(conflict)}`
            : ''),
        { index: result.index }
      )
    }
    const sub = this.options.poolBoard.currentState({ kind: 'partition', statementId: id })
    // Where the time went, for operators: the read, the signatures by gossip, the board's commit.
    this.options.logger.info(
      {
        statement: toHex(id).slice(0, 16),
        index: result.index,
        readMs: Math.round(timing.readMs),
        gatherMs: Math.round(gatherMs),
        commitMs: Math.round(commitMs),
        totalMs: Math.round(performance.now() - timing.startMs)
      },
      'partition accepted'
    )
    return {
      statementId: toHex(id),
      index: result.index,
      pool: refId({ kind: 'partition', statementId: id }),
      poolLabel: this.options.words.label({ kind: 'partition', statementId: id }),
      parent: where,
      actives: this.options.words.nameList(statement.actives),
      balances: sub === undefined ? {} : this.options.words.namedBalances(sub)
    }
  }

  /** Our own answer as a member, for our own round: a refusal is the command's error. */
  private async decideAsProposer(decide: () => Promise<SignatureShare | null>): Promise<SignatureShare> {
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

  private requireHome(key: Uint8Array, who: string): Home {
    const { poolBoard } = this.options
    if (poolBoard.genesis === null)
      throw new PoolError('no-pool', 'the board holds no pool yet: create one with poolboard pool create')
    const home = homeOf(poolBoard, key)
    if (home === null) {
      const kicked = poolBoard.kickouts().find((k) => equalBytes(k.member, key))
      if (kicked !== undefined)
        throw new PoolError(
          'closed',
          `${who === 'you' ? 'you were' : `${who} was`} kicked out of the ${this.options.words.label(kicked.pool)} at board index ${kicked.index}: no funds left in the pool`
        )
      throw new PoolError('not-member', `${who === 'you' ? 'you are' : `${who} is`} not a member of the pool`)
    }
    return home
  }

  private openState(home: Home): PoolState {
    const { poolBoard } = this.options
    const state = poolBoard.currentState(home.view.ref)!
    if (home.view.status === 'frozen') {
      const parts = poolBoard
        .partitionsOf(state)
        .map((s) => `${short(s.id)} (${this.options.words.names(s.statement?.actives ?? [])})`)
      throw new PoolError(
        'frozen',
        `your pool, the ${this.options.words.label(home.view.ref)}, is frozen: its state ${state.stateNumber} was partitioned by statement ${parts.join(', ')}; ` +
          'it takes no new state. Move on in a partition of your own: poolboard pool partition --with MEMBERS'
      )
    }
    return state
  }

  resolve(text: string): { name: string; key: Uint8Array } {
    try {
      return this.options.members.resolve(text)
    } catch (err) {
      throw new PoolError('unknown-member', (err as Error).message)
    }
  }
}

/** A fresh partition request with a new round id and signing nonce, signed by `memberSecret`. */
export function signNewPartitionRequest(
  parentState: Parameters<typeof makePartitionRequest>[0],
  fields: Omit<Parameters<typeof makePartitionRequest>[1], 'roundId'>,
  memberSecret: Uint8Array
): PartitionRequest {
  return signPartitionRequest(
    makePartitionRequest(parentState, { ...fields, roundId: randomBytes(32) }),
    memberSecret,
    randomBytes(32)
  )
}
