import type { PoolBoard, PoolTreeNode, PoolView } from '../../board/pool-board.js'
import { equalBytes, toHex } from '../../protocol/bytes.js'
import { describePoolRef, encodePoolRef, equalPoolRefs, type PoolRef } from '../../protocol/common.js'
import { kickout } from '../../protocol/rules.js'
import type { PoolState } from '../../protocol/state.js'

/**
 * What `pool status` shows, computed from the pool board alone, so that every node that applied
 * the same entries shows the same thing (names come from the config, the same on every member).
 */

export type NameOf = (key: Uint8Array) => string

/** `pool create`'s defaults (`cluster up --pool`, the lab): each member's starting balance, and the kick-out delay X. */
export const DEFAULT_BALANCE_SATS = 100_000n
export const DEFAULT_KICKOUT_DELAY_BLOCKS = 144

/** A stable text id of a pool reference: `root`, `partition/<statement id>`, `continuation/<ref hex>`. */
export function refId(ref: PoolRef): string {
  if (ref.kind === 'root') return 'root'
  if (ref.kind === 'partition') return `partition/${toHex(ref.statementId)}`
  return `continuation/${toHex(encodePoolRef(ref))}`
}

/**
 * Labels pools for people with what the board knows: a continuation is named after the member
 * kicked out, e.g. `partition 9f3a21c0d4e5b6a7 without node3`.
 */
export function poolLabeller(board: PoolBoard, nameOf: NameOf): (ref: PoolRef) => string {
  return (ref) => {
    const without: string[] = []
    let r = ref
    while (r.kind === 'continuation') {
      const c = r
      const k = board.kickouts().find((x) => x.stateNumber === c.parentStateNumber && equalPoolRefs(x.pool, c.parent))
      without.push(k === undefined ? `member ${c.evictedIndex}` : nameOf(k.member))
      r = c.parent
    }
    const base = r.kind === 'root' ? 'root pool' : describePoolRef(r)
    return without.length === 0 ? base : `${base} without ${without.reverse().join(', ')}`
  }
}

/** Where a member's funds are now: the (open or frozen) pool in which its balance was not moved into a partition. */
export interface Home {
  view: PoolView
  /** The member's index in that pool. */
  index: number
}

export function homeOf(board: PoolBoard, key: Uint8Array): Home | null {
  return homesOf(board)(key)
}

/** `homeOf` for many members: lists the board's pools once (listing builds a view of every pool). */
export function homesOf(board: PoolBoard): (key: Uint8Array) => Home | null {
  const views = board.poolList()
  return (key) => {
    for (const view of views) {
      if (view.status === 'closed' || view.status === 'merged') continue
      const index = view.members.findIndex((m) => equalBytes(m.key, key))
      if (index >= 0 && view.members[index].partitionedBy === null) return { view, index }
    }
    return null
  }
}

export interface MemberPlace {
  name: string
  key: string
  /** The pool holding its funds (refId), or null once kicked out. */
  pool: string | null
  poolLabel: string | null
  balanceSats: bigint
  /** Paid out on chain by kick-outs. */
  onChainSats: bigint
}

export interface PoolNodeView {
  ref: string
  label: string
  kind: PoolRef['kind']
  status: string
  state: number
  heightT: number
  /** T + X + 1: from this height a member of this state can be kicked out. */
  kickoutFromHeight: number
  totalSats: bigint
  /** Board index of the entry that made it (the genesis, the statement, the kick-out). */
  createdAtIndex: number
  parent: { ref: string; label: string; state: number } | null
  members: Array<{ name: string; balanceSats: bigint; movedTo: string | null }>
  /** Balances still held here (not moved into a partition), by member name. */
  balances: Record<string, bigint>
  children: PoolNodeView[]
}

export interface PoolStatusView {
  poolId: string | null
  /** State number of the root pool. */
  state: number | null
  chainHeight: number
  appliedIndex: number
  totalSats: bigint
  kickoutDelayBlocks: number | null
  /** Each member's funds in the pools now, by name (0 once kicked out). */
  balances: Record<string, bigint>
  /** What kick-outs paid on chain, by name. */
  onChain: Record<string, bigint>
  members: MemberPlace[]
  /** Every pool but the root (partitions and continuations), in the order they were made. */
  partitions: Array<Omit<PoolNodeView, 'children'>>
  tree: PoolNodeView | null
  evidenceCount: number
  equivocators: string[]
  kickouts: Array<{ member: string; pool: string; state: number; exitSats: bigint; height: number; index: number }>
}

export function poolStatusView(board: PoolBoard, nameOf: NameOf): PoolStatusView {
  const genesis = board.genesis
  const id = board.poolId
  const tree = board.poolTree()
  const label = poolLabeller(board, nameOf)
  const nodes: PoolNodeView[] = []
  const build = (node: PoolTreeNode, parent: PoolNodeView | null): PoolNodeView => {
    const v = node.pool
    const record = board.pool(v.ref)
    const balances: Record<string, bigint> = {}
    for (const m of v.members)
      if (m.partitionedBy === null && v.status !== 'closed' && v.status !== 'merged')
        balances[nameOf(m.key)] = m.balanceSats
    const out: PoolNodeView = {
      ref: refId(v.ref),
      label: label(v.ref),
      kind: v.ref.kind,
      status: v.status,
      state: v.stateNumber,
      heightT: v.heightT,
      kickoutFromHeight: v.heightT + (genesis?.kickoutDelayBlocks ?? 0) + 1,
      totalSats: v.totalSats,
      createdAtIndex: record?.createdAt ?? 0,
      parent:
        v.parent === null
          ? null
          : { ref: refId(v.parent.pool), label: label(v.parent.pool), state: v.parent.stateNumber },
      members: v.members
        .map((m) => ({
          name: nameOf(m.key),
          balanceSats: m.balanceSats,
          movedTo: m.partitionedBy === null ? null : refId({ kind: 'partition', statementId: m.partitionedBy })
        }))
        .sort((a, b) => byName(a.name, b.name)),
      balances: sortedRecord(balances),
      children: []
    }
    if (parent !== null) nodes.push(out)
    out.children = node.children.map((c) => build(c, out))
    return out
  }
  const root = tree === null ? null : build(tree, null)

  const members: MemberPlace[] = []
  const balances: Record<string, bigint> = {}
  const onChain: Record<string, bigint> = {}
  const exits = new Map<string, bigint>()
  for (const k of board.kickouts()) exits.set(toHex(k.member), (exits.get(toHex(k.member)) ?? 0n) + k.exitSats)
  const homeOfMember = homesOf(board)
  for (const gm of genesis?.members ?? []) {
    const name = nameOf(gm.key)
    const home = homeOfMember(gm.key)
    const balanceSats = home === null ? 0n : home.view.members[home.index].balanceSats
    const onChainSats = exits.get(toHex(gm.key)) ?? 0n
    balances[name] = balanceSats
    if (onChainSats > 0n) onChain[name] = onChainSats
    members.push({
      name,
      key: toHex(gm.key),
      pool: home === null ? null : refId(home.view.ref),
      poolLabel: home === null ? null : label(home.view.ref),
      balanceSats,
      onChainSats
    })
  }
  nodes.sort((a, b) => a.createdAtIndex - b.createdAtIndex)
  members.sort((a, b) => byName(a.name, b.name))
  return {
    poolId: id === null ? null : toHex(id),
    state: tree === null ? null : tree.pool.stateNumber,
    chainHeight: board.chainHeight,
    appliedIndex: board.appliedIndex,
    totalSats: genesis === null ? 0n : genesis.balances.reduce((a, b) => a + b, 0n),
    kickoutDelayBlocks: genesis?.kickoutDelayBlocks ?? null,
    balances: sortedRecord(balances),
    onChain: sortedRecord(onChain),
    members,
    partitions: nodes.map(({ children: _children, ...rest }) => rest),
    tree: root,
    evidenceCount: board.evidence().length,
    equivocators: board.equivocators().map(nameOf),
    kickouts: board.kickouts().map((k) => ({
      member: nameOf(k.member),
      pool: refId(k.pool),
      state: k.stateNumber,
      exitSats: k.exitSats,
      height: k.height,
      index: k.index
    }))
  }
}

/** The height from which `member` can be kicked out of `state`, and why, for messages. */
export function kickoutHeight(state: PoolState, member: Uint8Array): { validFromHeight: number; text: string } {
  const k = kickout(state, member)
  return {
    validFromHeight: k.validFromHeight,
    text: `T ${state.heightT} + X ${state.pool.kickoutDelayBlocks} + 1 = ${k.validFromHeight}`
  }
}

/** Names in natural order: node2 before node10. */
export function byName(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true })
}

function sortedRecord<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => byName(a, b)))
}
