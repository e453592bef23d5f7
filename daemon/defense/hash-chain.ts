import type { Alarm } from '../../board/raft/index.js'
import { toHex } from '../../protocol/bytes.js'
import { Writer, decodeAll, type Reader } from '../../protocol/codec.js'
import { short } from '../../protocol/common.js'
import { MAX_OBJECT_BYTES } from '../../protocol/limits.js'
import { decodeStatement, encodeStatement, statementId, type PartitionStatement } from '../../protocol/statement.js'
import { activesOf, conflictsAmong, DefenseRefusal } from './refusal.js'
import type { DefensePartOptions } from './options.js'
import { RpcError } from '../net/rpc.js'

/**
 * The hash-chain defense, past the core. With `verifyHashChain` the core compares entry hashes
 * where plain Raft compares terms, and never truncates a committed entry: a leader that offers a
 * log rewriting one raises a `committed-entry-conflict` alarm (the rewritten no-op of a coalition
 * keeps the index and term of the statement it replaces, so only the hash tells them apart).
 *
 * This module turns such an alarm into a proof and sends it to every member, again every
 * REOFFER_MS to those that have not acknowledged it, for PROOF_KEPT_MS: a member that was offline
 * (the one the coalition means to fool) still learns it when it comes back. The proof carries
 * the alarm (index, both terms and hashes, who offered it in which term) and the statements this
 * node holds committed up to that index, newest first: a statement is self-authenticating by its
 * signatures, so the receiver needs to trust nobody. A receiver checks each one against its own
 * view and, if its board lacks it, treats it as known: it refuses to sign any partition that
 * conflicts with it, naming it and who reported it.
 *
 * `/poolboard/board/alarm/1.0.0`, request: `version u8 = 1 | index u53 | localTerm u53 |
 * localHash 32 | offeredTerm u53 | offeredHash 32 | offeredBy string ≤ 128 | term u53 |
 * statements (count ≤ MAX_PROOF_STATEMENTS) × (board index u53 | statement bytes)`; response
 * `version u8 = 1` (acknowledged).
 */

export const ALARM_PROTOCOL = '/poolboard/board/alarm/1.0.0'
const ALARM_VERSION = 1
export const MAX_PROOF_STATEMENTS = 8
const MAX_PEER_ID_BYTES = 128
const MAX_PROOFS = 16
const MAX_KNOWN_STATEMENTS = 64
const REOFFER_MS = 1_000
const PROOF_KEPT_MS = 10 * 60_000
const CALL_TIMEOUT_MS = 2_000

export interface ChainProof {
  index: number
  localTerm: number
  localHash: Uint8Array
  offeredTerm: number
  offeredHash: Uint8Array
  /** Peer id of the leader that offered the rewritten log, and the term it claimed. */
  offeredBy: string
  term: number
  statements: Array<{ index: number; statement: PartitionStatement }>
}

export function encodeProof(p: ChainProof): Uint8Array {
  const w = new Writer(1024)
    .u8(ALARM_VERSION)
    .u53(p.index, 'index')
    .u53(p.localTerm, 'localTerm')
    .bytes32(p.localHash, 'localHash')
  w.u53(p.offeredTerm, 'offeredTerm')
    .bytes32(p.offeredHash, 'offeredHash')
    .string(p.offeredBy, MAX_PEER_ID_BYTES, 'offeredBy')
    .u53(p.term, 'term')
  w.array(
    p.statements,
    MAX_PROOF_STATEMENTS,
    (w, s) => {
      w.u53(s.index, 'index').bytes(encodeStatement(s.statement), MAX_OBJECT_BYTES, 'statement')
    },
    'statements'
  )
  return w.finish()
}

export function decodeProof(bytes: Uint8Array): ChainProof {
  return decodeAll(bytes, 'board alarm proof', (r: Reader) => {
    r.version([ALARM_VERSION])
    return {
      index: r.u53('index'),
      localTerm: r.u53('localTerm'),
      localHash: r.bytes32('localHash'),
      offeredTerm: r.u53('offeredTerm'),
      offeredHash: r.bytes32('offeredHash'),
      offeredBy: r.string('offeredBy', MAX_PEER_ID_BYTES),
      term: r.u53('term'),
      statements: r.array(
        'statements',
        MAX_PROOF_STATEMENTS,
        (r) => ({ index: r.u53('index'), statement: decodeStatement(r.bytes('statement', MAX_OBJECT_BYTES)) }),
        8
      )
    }
  })
}

interface HeldProof {
  key: string
  bytes: Uint8Array
  offeredBy: string
  acked: Set<string>
  untilMs: number
  sending: Set<string>
}
interface KnownStatement {
  statement: PartitionStatement
  index: number
  reporter: string
  offeredBy: string
  alarmIndex: number
}

export class HashChainDefense {
  private readonly proofs = new Map<string, HeldProof>()
  private readonly known = new Map<string, KnownStatement>()
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly options: DefensePartOptions) {}

  async start(): Promise<void> {
    await this.options.rpc.handle(ALARM_PROTOCOL, async (request, from) => {
      let proof: ChainProof
      try {
        proof = decodeProof(request)
      } catch (err) {
        throw new RpcError('malformed', (err as Error).message)
      }
      if (this.options.enabled) await this.receive(proof, from)
      return Uint8Array.of(ALARM_VERSION)
    })
    if (!this.options.enabled) return
    this.timer = setInterval(() => {
      this.reoffer()
    }, REOFFER_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
  }

  /** An alarm from the core: a proof for every member, once per rewritten entry. */
  onAlarm(alarm: Alarm): void {
    if (!this.options.enabled || alarm.kind !== 'committed-entry-conflict') return
    const key = `${alarm.index}:${toHex(alarm.offeredHash)}`
    if (this.proofs.has(key)) return // the leader offers it again at every heartbeat
    const { poolBoard, nameOf, nameOfKey, log } = this.options
    const statements = poolBoard
      .poolList()
      .flatMap((p) => (p.ref.kind === 'partition' ? [poolBoard.statement(p.ref.statementId)] : []))
      .filter((s) => s !== undefined && s.status === 'accepted' && s.statement !== null && s.index <= alarm.index)
      .sort((a, b) => b!.index - a!.index)
      .slice(0, MAX_PROOF_STATEMENTS)
      .map((s) => ({ index: s!.index, statement: s!.statement! }))
    const proof: ChainProof = {
      index: alarm.index,
      localTerm: alarm.localTerm,
      localHash: alarm.localHash,
      offeredTerm: alarm.offeredTerm,
      offeredHash: alarm.offeredHash,
      offeredBy: alarm.from,
      term: alarm.term,
      statements
    }
    while (this.proofs.size >= MAX_PROOFS) this.proofs.delete(this.proofs.keys().next().value!)
    this.proofs.set(key, {
      key,
      bytes: encodeProof(proof),
      offeredBy: alarm.from,
      acked: new Set(),
      untilMs: Date.now() + PROOF_KEPT_MS,
      sending: new Set()
    })
    const held = statements.map(
      (s) => `${short(statementId(s.statement))} (${activesOf(s.statement, nameOfKey)}; index ${s.index})`
    )
    log.record(`chain:${key}`, {
      defense: 'hash-chain',
      how: 'detected',
      message:
        `${nameOf(alarm.from)}, leading in term ${alarm.term}, offered a board log that rewrites entry ${alarm.index}, which I hold committed ` +
        `(mine: term ${alarm.localTerm}, hash ${toHex(alarm.localHash).slice(0, 16)}; offered: term ${alarm.offeredTerm}, hash ${toHex(alarm.offeredHash).slice(0, 16)}); ` +
        `statements I hold committed up to there: ${held.length === 0 ? 'none' : held.join(', ')}; proof sent to every member`,
      members: [nameOf(alarm.from)],
      index: alarm.index,
      statementId: statements.length === 0 ? null : toHex(statementId(statements[0].statement))
    })
    this.reoffer()
  }

  /** Sends `peerId` the proofs it has not acknowledged (it just connected, say). */
  offerTo(peerId: string): void {
    if (!this.options.enabled) return
    const nowMs = Date.now()
    for (const p of this.proofs.values()) {
      if (p.untilMs < nowMs || p.acked.has(peerId) || p.sending.has(peerId) || p.offeredBy === peerId) continue
      p.sending.add(peerId)
      this.options.rpc
        .call(peerId, ALARM_PROTOCOL, p.bytes, CALL_TIMEOUT_MS)
        .then(
          () => {
            p.acked.add(peerId)
          },
          () => {
            /* offered again later */
          }
        )
        .finally(() => {
          p.sending.delete(peerId)
        })
    }
  }

  /** A statement reported by a proof that conflicts with `statement` and that this node's board lacks. */
  conflictWith(statement: PartitionStatement): DefenseRefusal | null {
    if (!this.options.enabled) return null
    const { poolBoard, nameOfKey, log } = this.options
    for (const k of conflictsAmong(this.known.values(), statement)) {
      const otherId = statementId(k.statement)
      if (poolBoard.statement(otherId)?.status === 'accepted') continue
      const message =
        `${k.reporter} proved that ${k.offeredBy}, leading the board, offered a log rewriting committed entry ${k.alarmIndex}; ` +
        `statement ${short(otherId)} (${activesOf(k.statement, nameOfKey)}; committed at index ${k.index} on ${k.reporter}'s board, missing from mine) already spends outputs that partition ${short(statementId(statement))} spends`
      log.record(`chain-refused:${toHex(otherId)}:${toHex(statementId(statement))}`, {
        defense: 'hash-chain',
        how: 'refused',
        message,
        members: [k.reporter, k.offeredBy],
        index: k.index,
        statementId: toHex(otherId)
      })
      return new DefenseRefusal('conflict-reported', message, { statementId: otherId, index: k.index })
    }
    return null
  }

  reported(): Array<{ statementId: string; index: number; reporter: string }> {
    return [...this.known.entries()].map(([id, k]) => ({ statementId: id, index: k.index, reporter: k.reporter }))
  }

  private reoffer(): void {
    const nowMs = Date.now()
    for (const [key, p] of this.proofs) if (p.untilMs < nowMs) this.proofs.delete(key)
    for (const peerId of this.options.connectedPeerIds()) this.offerTo(peerId)
  }

  private async receive(proof: ChainProof, from: string): Promise<void> {
    const { poolBoard, board, nameOf, nameOfKey, log, verify } = this.options
    const reporter = nameOf(from)
    const offeredBy = nameOf(proof.offeredBy)
    // Is this node's own copy of that entry the one the reporter refused? Then it caught up from the rewriter.
    const mine = (await board.committedEntries(proof.index, 1))[0]
    const same = mine !== undefined && toHex(mine.hash) === toHex(proof.offeredHash)
    for (const s of proof.statements) {
      const id = statementId(s.statement)
      if (poolBoard.statement(id)?.status === 'accepted' || this.known.has(toHex(id))) continue
      const verdict = verify(s.statement)
      if (verdict === null) continue
      if (!verdict.ok) {
        this.options.logger.warn(
          { from: reporter, statement: toHex(id), reason: verdict.reason },
          'hash chain: a proof carried a statement that does not verify'
        )
        continue
      }
      while (this.known.size >= MAX_KNOWN_STATEMENTS) this.known.delete(this.known.keys().next().value!)
      this.known.set(toHex(id), {
        statement: s.statement,
        index: s.index,
        reporter,
        offeredBy,
        alarmIndex: proof.index
      })
      log.record(`chain-learned:${toHex(id)}`, {
        defense: 'hash-chain',
        how: 'learned',
        message:
          `${reporter} proved that ${offeredBy}, leading in term ${proof.term}, offered a log rewriting committed entry ${proof.index}` +
          `${same ? ' (the log I hold there is the rewritten one)' : ''}; it holds statement ${short(id)} (${activesOf(s.statement, nameOfKey)}; index ${s.index}), which my board lacks: I will not sign anything conflicting with it`,
        members: [reporter, offeredBy],
        index: s.index,
        statementId: toHex(id)
      })
    }
  }
}
