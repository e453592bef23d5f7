import type { PoolBoard, StatementRecord } from '../../board/pool-board.js'
import { equalBytes } from '../../protocol/bytes.js'
import { indexOfKey, type Outpoint, type PoolRef, type StateRef } from '../../protocol/common.js'
import type { PartitionRequest, UpdateRequest } from '../../protocol/requests.js'
import {
  buildPartitionStatement,
  checkPartitionRequestEnvelope,
  checkUpdateAcceptable,
  checkUpdateRequest
} from '../../protocol/rules.js'
import { stateHash, type PoolState } from '../../protocol/state.js'
import { conflictingOutpoints, statementId, type PartitionStatement } from '../../protocol/statement.js'
import type { RefusalConflict } from '../net/gossip.js'
import { byName } from './view.js'

/**
 * What a member decides about a request from its own board, and nothing else: no clock but the
 * `nowMs` it is given, no disk, no network. The member signer (daemon/pool/signer.ts) runs these after
 * reading the board and before the checks that need its disk (what it signed before) or the
 * defenses; the pool simulator (test/sim/pool-scale.ts) runs the same functions for each of its
 * members. A refusal is a `WontSign` whose code and message go into the member's signed refusal.
 */

/** A member's reasoned refusal to sign (sent as a signed refusal); not a fault. */
export class WontSign extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly conflict: RefusalConflict | null = null
  ) {
    super(message)
    this.name = 'WontSign'
  }
}

/** How the decisions name pools, states, statements and members in their refusals. */
export interface DecisionNames {
  label: (ref: PoolRef) => string
  stateLabel: (ref: StateRef) => string
  describeStatement: (c: StatementRecord) => string
  ownerOf: (parent: PoolState, o: Outpoint) => string
}

/**
 * State N+1 of an update request, if this member signs it: the request matches its board's current
 * state, the pool is open, the rules accept it and its own balance is not lowered unless it pays.
 * Null if it is not a member of that pool. Throws `WontSign` (or the rules' `RuleError`).
 */
export function decideUpdateOn(
  board: PoolBoard,
  memberKey: Uint8Array,
  req: UpdateRequest,
  nowMs: number,
  names: DecisionNames
): { current: PoolState; proposed: PoolState; hash: Uint8Array } | null {
  const current = board.currentState(req.from.pool)
  if (current === undefined) throw new WontSign('unknown-pool', `the board holds no ${names.label(req.from.pool)}`)
  if (indexOfKey(current.pool.members, memberKey) < 0) return null
  const record = board.pool(req.from.pool)!
  if (record.status !== 'open')
    throw new WontSign(record.status, `the ${names.label(req.from.pool)} is ${record.status}: it takes no new state`)
  const proposed = checkUpdateRequest(current, req, { nowMs })
  checkUpdateAcceptable(current, proposed, memberKey, req.payment)
  if (req.heightT > board.chainHeight)
    throw new WontSign('height', `heightT ${req.heightT} is above the chain height ${board.chainHeight}`)
  return { current, proposed, hash: stateHash(proposed) }
}

/**
 * The statement a partition request asks this member to sign, if its board allows it: the parent
 * is not closed, no committed statement already spends one of its outputs (refused, naming that
 * statement), the height is reached, and its balance does not drop unless it proposed. `derived`:
 * the statement the caller derived from the same parent state, not derived again. Null if it
 * is not an active. Throws `WontSign` (or the rules' `RuleError`).
 */
export function decidePartitionOn(
  board: PoolBoard,
  memberKey: Uint8Array,
  req: PartitionRequest,
  nowMs: number,
  names: DecisionNames,
  derived: { parent: PoolState; statement: PartitionStatement } | null = null
): { parent: PoolState; statement: PartitionStatement; id: Uint8Array; mine: number } | null {
  if (indexOfKey(req.actives, memberKey) < 0) return null
  const parent = board.currentState(req.parent.pool)
  if (parent === undefined) throw new WontSign('unknown-pool', `the board holds no ${names.label(req.parent.pool)}`)
  const record = board.pool(req.parent.pool)!
  if (record.status === 'closed')
    throw new WontSign('closed', `the ${names.label(req.parent.pool)} is closed (a member was kicked out)`)
  checkPartitionRequestEnvelope(parent, req, { nowMs })
  // The statement derived when the request arrived is reused while the parent state is the same.
  const statement =
    derived !== null && derived.parent === parent
      ? derived.statement
      : buildPartitionStatement(parent, req.actives, req.newBalances, req.heightT)
  const id = statementId(statement)
  const conflicts = board.conflictsFor(statement.spent).filter((c) => !equalBytes(c.id, id))
  if (conflicts.length > 0) {
    const c = conflicts[0]
    const whose =
      c.statement === null
        ? []
        : conflictingOutpoints(c.statement, statement)
            .map((o) => names.ownerOf(parent, o))
            .sort(byName)
    throw new WontSign(
      'conflict',
      `statement ${names.describeStatement(c)} already spends the Withdraw output${whose.length === 1 ? '' : 's'} of ${whose.join(', ')} at the ${names.stateLabel(statement.parent)}`,
      { statementId: c.id, index: c.index }
    )
  }
  if (statement.heightT > board.chainHeight)
    throw new WontSign('height', `heightT ${statement.heightT} is above the chain height ${board.chainHeight}`)
  const mine = indexOfKey(statement.actives, memberKey)
  const before = parent.balances[indexOfKey(parent.pool.members, memberKey)]
  if (!equalBytes(req.proposer, memberKey) && statement.newBalances[mine] < before) {
    throw new WontSign(
      'balance-decreased',
      `my balance would drop from ${before} to ${statement.newBalances[mine]} sats and I am not the one paying`
    )
  }
  return { parent, statement, id, mine }
}
