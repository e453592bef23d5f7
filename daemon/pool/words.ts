import type { PoolBoard, StatementRecord } from '../../board/pool-board.js'
import { equalOutpoints, short, type Outpoint, type PoolRef, type StateRef } from '../../protocol/common.js'
import type { PoolState } from '../../protocol/state.js'
import { withdrawOutpoints } from '../../protocol/state.js'
import { byName, poolLabeller, type NameOf } from './view.js'

/**
 * Pools, states, members and statements named for people, from what the pool board holds and the
 * members' names: the words every message of the rounds, the signer and the views use.
 */
export class PoolWords {
  constructor(
    private readonly poolBoard: PoolBoard,
    readonly nameOf: NameOf
  ) {}

  /** A pool for people: `root pool`, `partition 9f3a21c0d4e5b6a7`, `partition 9f3a21c0d4e5b6a7 without node3`. */
  label(ref: PoolRef): string {
    return poolLabeller(this.poolBoard, this.nameOf)(ref)
  }

  stateLabel(ref: StateRef): string {
    return `${this.label(ref.pool)} state ${ref.stateNumber}`
  }

  /** Member names for people, in natural order (node2 before node10). */
  names(keys: readonly Uint8Array[]): string {
    return this.nameList(keys).join(', ')
  }

  nameList(keys: readonly Uint8Array[]): string[] {
    return keys.map((k) => this.nameOf(k)).sort(byName)
  }

  namedBalances(state: PoolState): Record<string, bigint> {
    return Object.fromEntries(
      state.pool.members.map((k, i) => [this.nameOf(k), state.balances[i]] as const).sort(([a], [b]) => byName(a, b))
    )
  }

  /** "9f3a21c0d4e5b6a7 (node1, node2, node3; accepted at board index 14)". */
  describeStatement(c: StatementRecord): string {
    const actives = c.statement === null ? '' : `${this.names(c.statement.actives)}; `
    return `${short(c.id)} (${actives}${c.status} at board index ${c.index})`
  }

  /** The member whose Withdraw output of `parent` is `o`. */
  ownerOf(parent: PoolState, o: Outpoint): string {
    const outpoints = withdrawOutpoints(parent)
    const i = outpoints.findIndex((x) => equalOutpoints(x, o))
    return i < 0 ? 'an unknown member' : this.nameOf(parent.pool.members[i])
  }
}
