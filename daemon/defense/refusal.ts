import { equalBytes } from '../../protocol/bytes.js'
import { conflictingOutpoints, statementId, type PartitionStatement } from '../../protocol/statement.js'
import type { RefusalConflict } from '../net/gossip.js'

// What every defense shares: the refusal a defense raises, and the helpers that find and name the
// statements it refuses over.

/** A defense will not let this node sign: becomes a signed refusal naming what was found. */
export class DefenseRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly conflict: RefusalConflict | null = null
  ) {
    super(message)
    this.name = 'DefenseRefusal'
  }
}

/** The statements among `known` that conflict with `statement` (other ids spending a common outpoint). */
export function conflictsAmong<T extends { statement: PartitionStatement }>(
  known: Iterable<T>,
  statement: PartitionStatement
): T[] {
  const id = statementId(statement)
  const out: T[] = []
  for (const k of known) {
    if (equalBytes(statementId(k.statement), id)) continue
    if (conflictingOutpoints(k.statement, statement).length > 0) out.push(k)
  }
  return out
}

/** "node1, node2" for a statement's actives. */
export function activesOf(s: PartitionStatement, nameOfKey: (key: Uint8Array) => string): string {
  return s.actives
    .map(nameOfKey)
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .join(', ')
}
