import type { PoolBoard } from '../../board/pool-board.js'
import { equalBytes } from '../../protocol/bytes.js'
import { short } from '../../protocol/common.js'
import type { SignedStateRecord, SignedStatementRecord } from './signed-record.js'
import { PoolError } from './propose.js'
import { byName, poolLabeller } from './view.js'

/**
 * Checks a round must pass before this member signs anything for it, so that a command that
 * cannot succeed fails at once, naming why, instead of signing (which promises this member's
 * Withdraw output or its next state) and then waiting for its deadline.
 */

type NameOf = (key: Uint8Array) => string

export interface Reachability {
  /** The peer id of a member key, if it is a configured member. */
  peerOf: (key: Uint8Array) => string | undefined
  nameOf: NameOf
  /** Peer ids of the members connected now. */
  connectedPeerIds: () => string[]
}

/**
 * Every member whose signature `needed` asks for (this member aside) must be connected now: a
 * round needs all of them, and one that is offline cannot answer before any deadline.
 */
export function requireConnected(
  needed: readonly Uint8Array[],
  self: Uint8Array,
  r: Reachability,
  action: string,
  advice: (online: string[]) => string
): void {
  const connected = new Set(r.connectedPeerIds())
  const others = needed.filter((k) => !equalBytes(k, self))
  const offline = others.filter((k) => {
    const p = r.peerOf(k)
    return p === undefined || !connected.has(p)
  })
  if (offline.length === 0) return
  const names = offline.map(r.nameOf).sort(byName)
  const online = others
    .filter((k) => !offline.includes(k))
    .map(r.nameOf)
    .sort(byName)
  const hint = advice(online)
  throw new PoolError(
    'unreachable',
    `cannot ${action}: ${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} not connected to this node, and every signature is needed; nothing was signed` +
      (hint === '' ? '' : `; ${hint}`),
    { offline: names }
  )
}

/** A partition is among at least two members: one alone would only freeze the pool it leaves for everyone else. */
export function requireAnotherActive(actives: readonly Uint8Array[], self: Uint8Array, named: readonly string[]): void {
  if (actives.some((k) => !equalBytes(k, self))) return
  throw new PoolError(
    'bad-request',
    `--with ${named.join(',')} names only you: a partition is among you and at least one other member who is online ` +
      '(a partition of one would freeze your pool for every other member)'
  )
}

/** A payment the payer cannot afford, in words (names, sats with separators), before the pool rules say it by key. */
export function requireBalance(holdsSats: bigint, amountSats: bigint, payee: string, where: string): void {
  if (holdsSats >= amountSats) return
  throw new PoolError(
    'bad-request',
    `you hold ${formatSats(holdsSats)} sats in the ${where}, so you cannot pay ${formatSats(amountSats)} sats to ${payee}`
  )
}

export function formatSats(n: bigint | number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** A signature this member gave that never reached the board: what it waits for, shown by `pool status`. */
export interface UnfinishedView {
  kind: 'partition' | 'update'
  what: string
  /** The members whose signatures it needs, besides this member. */
  with: string[]
  signedAtMs: number
  /** The command that completes it (the only one that can, for this member's output or state). */
  complete: string
}

/**
 * The statements and the next state this member signed whose parent state is still current and
 * that the board does not hold: its Withdraw output (or state N+1) is promised to them until they
 * complete, so a member that later goes offline holds them up. A restart keeps them (SignMemory).
 */
export function unfinished(
  board: PoolBoard,
  self: Uint8Array,
  nameOf: NameOf,
  statements: readonly SignedStatementRecord[],
  nextState: {
    pool: Parameters<PoolBoard['currentState']>[0]
    fromNumber: number
    record: SignedStateRecord | undefined
  } | null
): UnfinishedView[] {
  const label = poolLabeller(board, nameOf)
  const out: UnfinishedView[] = []
  for (const s of statements) {
    if (board.statement(s.statementId) !== undefined) continue
    const { parent } = s.statement
    const current = board.pool(parent.pool)
    if (current === undefined || current.status !== 'open' || current.state.stateNumber !== parent.stateNumber) continue
    const others = s.statement.actives
      .filter((k) => !equalBytes(k, self))
      .map(nameOf)
      .sort(byName)
    out.push({
      kind: 'partition',
      what: `partition ${short(s.statementId)} of the ${label(parent.pool)} state ${parent.stateNumber} among ${[nameOf(self), ...others].sort(byName).join(', ')}`,
      with: others,
      signedAtMs: s.atMs,
      complete: `poolboard pool partition --with ${others.join(',')}`
    })
  }
  if (nextState !== null && nextState.record !== undefined) {
    const record = board.pool(nextState.pool)
    const current = record?.state
    const p = nextState.record.payment
    if (current !== undefined && record?.status === 'open' && current.stateNumber === nextState.fromNumber) {
      out.push({
        kind: 'update',
        what: `state ${nextState.fromNumber + 1} of the ${label(nextState.pool)} (${nameOf(p.payer)} pays ${nameOf(p.payee)} ${formatSats(p.amountSats)} sats)`,
        with: current.pool.members
          .filter((k) => !equalBytes(k, self))
          .map(nameOf)
          .sort(byName),
        signedAtMs: nextState.record.atMs,
        complete: equalBytes(p.payer, self)
          ? `poolboard pool pay --to ${nameOf(p.payee)} --amount ${p.amountSats}`
          : `(${nameOf(p.payer)} completes it)`
      })
    }
  }
  return out
}
