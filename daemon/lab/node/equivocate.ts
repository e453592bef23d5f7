import { randomBytes } from 'node:crypto'
import type { PoolBoard } from '../../../board/pool-board.js'
import { compareBytes, equalBytes, toHex } from '../../../protocol/bytes.js'
import { indexOfKey, short } from '../../../protocol/common.js'
import { makeSignatureShare } from '../../../protocol/requests.js'
import { checkPartitionRequest } from '../../../protocol/rules.js'
import { statementId } from '../../../protocol/statement.js'
import type { Logger } from '../../host/log.js'
import { type PoolProposer, signNewPartitionRequest } from '../../pool/proposer.js'
import { PoolError, type BoardRead } from '../../pool/propose.js'
import type { PartitionResult } from '../../pool/results.js'
import { roundTimeout, type RefusalView } from '../../pool/rounds.js'
import type { MemberSigner } from '../../pool/signer.js'
import type { PoolWords } from '../../pool/words.js'

/** POST /v1/lab/equivocate */
export type EquivocateResult =
  | { outcome: 'accepted'; statementId: string; first: FirstStatementView; accepted: PartitionResult }
  | {
      outcome: 'refused' | 'rejected' | 'failed'
      statementId: string
      actives: string[]
      first: FirstStatementView
      message: string
      refusals: RefusalView[]
      signed: string[]
    }

/** The statement this member signed first, which the equivocation conflicts with. */
export interface FirstStatementView {
  statementId: string
  actives: string[]
  index: number | null
}

export interface LabEquivocationOptions {
  /** Lab mode: without it every call is refused (`lab-only`). */
  lab: boolean
  /** A coalition member trusts its own rewritten board (it reads no majority). */
  labCoalition: boolean
  memberKey: Uint8Array
  memberSecret: Uint8Array
  poolBoard: PoolBoard
  read: BoardRead
  signer: Pick<MemberSigner, 'signedStatements'>
  proposer: Pick<PoolProposer, 'resolve' | 'runPartition'>
  words: PoolWords
  logger: Logger
}

/**
 * The lab's equivocating member: it signs a partition that conflicts with the newest statement it
 * signed (bypassing its own never-sign-twice memory, which only the signer consults) and asks
 * others to sign it too, so that one can watch the honest members refuse it.
 */
export class LabEquivocation {
  constructor(private readonly options: LabEquivocationOptions) {}

  async equivocate(params: { with: string[]; timeoutMs?: number }): Promise<EquivocateResult> {
    if (!this.options.lab)
      throw new PoolError('lab-only', 'equivocation is a lab behaviour: start the node with --lab (lab=1)')
    const timeoutMs = roundTimeout(params.timeoutMs)
    const deadlineMs = Date.now() + timeoutMs
    // A coalition member trusts its own rewritten board: it needs no majority to agree with it.
    if (!this.options.labCoalition) await this.options.read()
    const me = this.options.memberKey
    const { poolBoard } = this.options
    const signed = (await this.options.signer.signedStatements()).find((s) => {
      const parent = poolBoard.currentState(s.statement.parent.pool)
      return parent !== undefined && parent.stateNumber === s.statement.parent.stateNumber
    })
    if (signed === undefined)
      throw new PoolError(
        'bad-request',
        'this member has signed no partition statement whose parent state is still current: make a partition first'
      )
    const parentState = poolBoard.currentState(signed.statement.parent.pool)!
    const where = `${this.options.words.label(parentState.pool.ref)} state ${parentState.stateNumber}`
    const actives = new Map<string, Uint8Array>([[toHex(me), me]])
    for (const text of params.with) {
      const m = this.options.proposer.resolve(text)
      if (indexOfKey(parentState.pool.members, m.key) < 0)
        throw new PoolError('not-member', `${m.name} is not a member of the ${where}`)
      actives.set(toHex(m.key), m.key)
    }
    const activeKeys = [...actives.values()].sort(compareBytes)
    const balances = activeKeys.map((k) => parentState.balances[indexOfKey(parentState.pool.members, k)])
    const heightT = Math.max(parentState.heightT, poolBoard.chainHeight)
    const request = signNewPartitionRequest(
      parentState,
      { proposer: me, actives: activeKeys, newBalances: balances, heightT, deadlineMs },
      this.options.memberSecret
    )
    const statement = checkPartitionRequest(parentState, request)
    const id = statementId(statement)
    if (equalBytes(id, signed.statementId))
      throw new PoolError(
        'bad-request',
        `that is the statement you already signed (${short(id)}): choose other members to equivocate with`
      )
    this.options.logger.warn(
      { statement: toHex(id), first: toHex(signed.statementId) },
      'lab: signing a statement that conflicts with one this member already signed'
    )
    const own = makeSignatureShare(
      { kind: 'statement', poolId: statement.poolId, roundId: request.roundId, subject: id, member: me },
      this.options.memberSecret,
      randomBytes(32)
    )
    const first = poolBoard.statement(signed.statementId)
    const firstView = {
      statementId: toHex(signed.statementId),
      actives: this.options.words.nameList(signed.statement.actives),
      index: first?.status === 'accepted' ? first.index : null
    }
    try {
      const accepted = await this.options.proposer.runPartition(request, statement, own, deadlineMs, where)
      return { outcome: 'accepted', statementId: toHex(id), first: firstView, accepted }
    } catch (err) {
      if (!(err instanceof PoolError)) throw err
      const refusals = (err.details.refusals ?? []) as RefusalView[]
      const outcome =
        err.code === 'round-failed' && refusals.length > 0 ? 'refused' : err.code === 'rejected' ? 'rejected' : 'failed'
      // Past the round (the board did not commit it in time, or refused it), every active had signed.
      const signed =
        err.code === 'round-failed' || err.code === 'busy'
          ? ((err.details.signed ?? []) as string[])
          : this.options.words.nameList(activeKeys)
      return {
        outcome,
        statementId: toHex(id),
        actives: this.options.words.nameList(activeKeys),
        first: firstView,
        message: err.message,
        refusals,
        signed
      }
    }
  }
}
