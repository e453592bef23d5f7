import { toHex } from '../../protocol/bytes.js'
import { Writer, decodeAll, type Reader } from '../../protocol/codec.js'
import { readOutpoint, short, writeOutpoint, type Outpoint } from '../../protocol/common.js'
import { MAX_MEMBERS, MAX_OBJECT_BYTES } from '../../protocol/limits.js'
import { decodeStatement, encodeStatement, statementId, type PartitionStatement } from '../../protocol/statement.js'
import { activesOf, conflictsAmong, DefenseRefusal } from './refusal.js'
import type { DefensePartOptions } from './options.js'
import { sleep } from '../host/wait.js'
import { RpcError } from '../net/rpc.js'

/**
 * The gossip-check defense: before signing a partition, a node asks every member it can reach
 * for the statements its board holds on the outputs the partition spends, checks every answer
 * itself (a statement is self-authenticating: of this pool, derived from the parent state this
 * node holds, signed by every active), and refuses if one of them conflicts, naming it and who
 * reported it. One honest member that holds the statement and is reachable is enough; it fails
 * when every member who knows it is offline or in the coalition.
 *
 * `/poolboard/statements/1.0.0`, request: `version u8 = 1 | outpoints (count ≤ 256) × outpoint`;
 * response: `version u8 = 1 | statements (count ≤ MAX_STATEMENTS_ANSWERED) × (board index u53 |
 * statement bytes)`, the accepted statements spending any of them, oldest first.
 */

export const STATEMENTS_PROTOCOL = '/poolboard/statements/1.0.0'
const STATEMENTS_VERSION = 1
/** A partition spends one outpoint per active: up to every member's. */
const MAX_OUTPOINTS_ASKED = MAX_MEMBERS
export const MAX_STATEMENTS_ANSWERED = 8
/** How long the check waits for the members it can reach. */
const CHECK_TIMEOUT_MS = 2_000

export interface ReportedStatement {
  index: number
  statement: PartitionStatement
}

export function encodeStatementsRequest(outpoints: readonly Outpoint[]): Uint8Array {
  const w = new Writer(16 + outpoints.length * 36).u8(STATEMENTS_VERSION)
  w.array(
    outpoints,
    MAX_OUTPOINTS_ASKED,
    (w, o) => {
      writeOutpoint(w, o)
    },
    'outpoints'
  )
  return w.finish()
}

export function decodeStatementsRequest(bytes: Uint8Array): Outpoint[] {
  return decodeAll(bytes, 'statements request', (r: Reader) => {
    r.version([STATEMENTS_VERSION])
    return r.array('outpoints', MAX_OUTPOINTS_ASKED, (r) => readOutpoint(r, 'outpoint'), 36)
  })
}

export function encodeStatementsResponse(statements: readonly ReportedStatement[]): Uint8Array {
  const w = new Writer(1024).u8(STATEMENTS_VERSION)
  w.array(
    statements,
    MAX_STATEMENTS_ANSWERED,
    (w, s) => {
      w.u53(s.index, 'index').bytes(encodeStatement(s.statement), MAX_OBJECT_BYTES, 'statement')
    },
    'statements'
  )
  return w.finish()
}

export function decodeStatementsResponse(bytes: Uint8Array): ReportedStatement[] {
  return decodeAll(bytes, 'statements response', (r: Reader) => {
    r.version([STATEMENTS_VERSION])
    return r.array(
      'statements',
      MAX_STATEMENTS_ANSWERED,
      (r) => ({ index: r.u53('index'), statement: decodeStatement(r.bytes('statement', MAX_OBJECT_BYTES)) }),
      8
    )
  })
}

export class StatementCheck {
  constructor(private readonly options: DefensePartOptions) {}

  async start(): Promise<void> {
    const { rpc, poolBoard, answerDelayMs } = this.options
    await rpc.handle(STATEMENTS_PROTOCOL, async (request) => {
      let outpoints: Outpoint[]
      try {
        outpoints = decodeStatementsRequest(request)
      } catch (err) {
        throw new RpcError('malformed', (err as Error).message)
      }
      if (answerDelayMs > 0) await sleep(answerDelayMs)
      // What this node's board holds: a coalition member's board is the rewritten one, so it lies without trying.
      const found = poolBoard
        .conflictsFor(outpoints)
        .filter((c) => c.statement !== null)
        .slice(0, MAX_STATEMENTS_ANSWERED)
      return encodeStatementsResponse(found.map((c) => ({ index: c.index, statement: c.statement! })))
    })
  }

  /** Asks every reachable member; throws DefenseRefusal on a verified conflicting statement this node's board lacks. */
  async beforeSign(statement: PartitionStatement, deadlineMs: number): Promise<void> {
    if (!this.options.enabled) return
    const { rpc, connectedPeerIds, nameOf, nameOfKey, poolBoard, log } = this.options
    const id = statementId(statement)
    const request = encodeStatementsRequest(statement.spent)
    const timeoutMs = Math.max(1, Math.min(CHECK_TIMEOUT_MS, deadlineMs - Date.now()))
    const answers = await Promise.all(
      connectedPeerIds().map(async (peerId) => {
        try {
          return {
            peerId,
            reported: decodeStatementsResponse(await rpc.call(peerId, STATEMENTS_PROTOCOL, request, timeoutMs))
          }
        } catch {
          return { peerId, reported: [] }
        }
      })
    )
    for (const { peerId, reported } of answers) {
      for (const r of conflictsAmong(reported, statement)) {
        const otherId = statementId(r.statement)
        if (poolBoard.statement(otherId)?.status === 'accepted') continue // the board's own check names it
        const verdict = this.options.verify(r.statement)
        if (verdict === null) continue
        const reporter = nameOf(peerId)
        if (!verdict.ok) {
          this.options.logger.warn(
            { from: reporter, statement: toHex(otherId), reason: verdict.reason },
            'gossip check: a member reported a statement that does not verify'
          )
          continue
        }
        const message = `${reporter} reports statement ${short(otherId)} (${activesOf(r.statement, nameOfKey)}; accepted at its board index ${r.index}), which already spends outputs that partition ${short(id)} spends; my board does not hold it: the history I caught up from hides it`
        log.record(`gossip:${toHex(otherId)}:${toHex(id)}`, {
          defense: 'gossip-check',
          how: 'refused',
          message,
          members: [reporter],
          index: r.index,
          statementId: toHex(otherId)
        })
        throw new DefenseRefusal('conflict-reported', message, { statementId: otherId, index: r.index })
      }
    }
  }
}
