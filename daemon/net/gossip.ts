import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { toHex } from '../../protocol/bytes.js'
import { DecodeError, EncodeError, Writer, decodeAll, type Reader } from '../../protocol/codec.js'
import { decodeEvidence, encodeEvidence, type EquivocationEvidence } from '../../protocol/evidence.js'
import { readGenesis, writeGenesis, type Genesis } from '../../protocol/genesis.js'
import { sha256, TAGS, taggedHash } from '../../protocol/hash.js'
import { signHash } from '../../protocol/keys.js'
import { MAX_OBJECT_BYTES } from '../../protocol/limits.js'
import {
  decodeMergeRequest,
  decodePartitionRequest,
  decodeSignatureShare,
  decodeUpdateRequest,
  encodeMergeRequest,
  encodePartitionRequest,
  encodeSignatureShare,
  encodeUpdateRequest,
  type MergeRequest,
  type PartitionRequest,
  type SignatureShare,
  type UpdateRequest
} from '../../protocol/requests.js'
import { LogLimiter, type Logger } from '../host/log.js'
import { sleep } from '../host/wait.js'

/**
 * Gossip among the pool's members: one gossipsub topic, one small envelope around the protocol
 * encodings, and the two objects that only travel by gossip (a genesis proposal and a refusal).
 *
 * Envelope (version 1):
 *
 *     version u8 = 1 | kind u8 | payload: varint length (≤ MAX_GOSSIP_PAYLOAD_BYTES) + bytes
 *
 * | kind | code | payload |
 * | --- | --- | --- |
 * | genesis-proposal | 1 | roundId 32 ‖ deadlineMs u64 ‖ genesis |
 * | update-request | 2 | update request (protocol) |
 * | share | 3 | signature share (protocol): a state or statement signature |
 * | partition-request | 4 | partition request (protocol) |
 * | refusal | 5 | refusal (below) |
 * | evidence | 6 | equivocation evidence (protocol) |
 * | merge-request | 7 | merge request (protocol): fold a frozen pool's partitions back into it |
 *
 * SignedRefusal (version 1): a member tells a round's proposer why it will not sign, signed by the member:
 *
 *     version u8 = 1 | poolId 32 (zero for a genesis round) | roundId 32 | member 32
 *     | code: string ≤ 32 | reason: string ≤ 1000
 *     | conflict u8 (0 = none, 1 = statement id 32 ‖ board index u64)
 *     | signature 64 over taggedHash('poolboard/refusal', everything before it)
 *
 * Decoding checks structure only; signatures are checked by the receiver (through the node's
 * signature cache). Errors are `DecodeError`s whose path starts with `gossip envelope`.
 */

export const GOSSIP_VERSION = 1
export const REFUSAL_VERSION = 1

export const GOSSIP_KINDS = [
  'genesis-proposal',
  'update-request',
  'share',
  'partition-request',
  'refusal',
  'evidence',
  'merge-request'
] as const
export type GossipKind = (typeof GOSSIP_KINDS)[number]

/** Largest payload: a genesis proposal is the biggest (a genesis of up to one protocol object). */
export const MAX_GOSSIP_PAYLOAD_BYTES = MAX_OBJECT_BYTES + 64
/** Largest envelope accepted or sent. */
export const MAX_GOSSIP_MESSAGE_BYTES = MAX_GOSSIP_PAYLOAD_BYTES + 16
export const MAX_REFUSAL_CODE_BYTES = 32
export const MAX_REFUSAL_REASON_BYTES = 1_000

/** The creator of a pool asks every member to sign state 0 of this genesis. */
export interface GenesisProposal {
  roundId: Uint8Array
  deadlineMs: number
  genesis: Genesis
}

/** A statement that already spends an outpoint a request wants: what a refusal points at. */
export interface RefusalConflict {
  statementId: Uint8Array
  /** Board index of the entry that accepted it. */
  index: number
}

export interface SignedRefusal {
  /** The pool, or 32 zero bytes in a genesis round (no pool yet). */
  poolId: Uint8Array
  roundId: Uint8Array
  /** The refusing member's key. */
  member: Uint8Array
  /** Stable, for programs: conflict, already-signed, equivocator, stale, rule, unavailable. */
  code: string
  /** For people: what was wrong. */
  reason: string
  conflict: RefusalConflict | null
  signature: Uint8Array
}
export type UnsignedRefusal = Omit<SignedRefusal, 'signature'>

export type GossipMessage =
  | { kind: 'genesis-proposal'; proposal: GenesisProposal }
  | { kind: 'update-request'; request: UpdateRequest }
  | { kind: 'share'; share: SignatureShare }
  | { kind: 'partition-request'; request: PartitionRequest }
  | { kind: 'refusal'; refusal: SignedRefusal }
  | { kind: 'evidence'; evidence: EquivocationEvidence }
  | { kind: 'merge-request'; request: MergeRequest }

export const ZERO_POOL_ID = new Uint8Array(32)

// ---- refusal ----

function writeUnsignedRefusal(w: Writer, r: UnsignedRefusal): Writer {
  w.u8(REFUSAL_VERSION)
  w.bytes32(r.poolId, 'poolId').bytes32(r.roundId, 'roundId').bytes32(r.member, 'member')
  w.string(r.code, MAX_REFUSAL_CODE_BYTES, 'code')
  w.string(clipUtf8(r.reason, MAX_REFUSAL_REASON_BYTES), MAX_REFUSAL_REASON_BYTES, 'reason')
  if (r.conflict === null) w.u8(0)
  else w.u8(1).bytes32(r.conflict.statementId, 'conflict.statementId').u53(r.conflict.index, 'conflict.index')
  return w
}

function readRefusal(r: Reader): SignedRefusal {
  r.version([REFUSAL_VERSION])
  const poolId = r.bytes32('poolId')
  const roundId = r.bytes32('roundId')
  const member = r.bytes32('member')
  const code = r.string('code', MAX_REFUSAL_CODE_BYTES)
  const reason = r.string('reason', MAX_REFUSAL_REASON_BYTES)
  const flag = r.u8('conflict')
  let conflict: RefusalConflict | null = null
  if (flag === 1)
    conflict = r.field('conflict', (r) => ({ statementId: r.bytes32('statementId'), index: r.u53('index') }))
  else if (flag !== 0) r.fail('conflict', `expected 0 (none) or 1 (statement), got ${flag}`)
  return { poolId, roundId, member, code, reason, conflict, signature: r.bytes64('signature') }
}

/** What the refusing member signs. */
export function refusalSigningHash(r: UnsignedRefusal): Uint8Array {
  const w = new Writer(256 + r.reason.length)
  w.field('refusal', (w) => {
    writeUnsignedRefusal(w, r)
  })
  // A tag of its own (protocol/hash.ts): a refusal's signature can never pass for a pool object's.
  return taggedHash(TAGS.refusal, w.finish())
}

export function signRefusal(r: UnsignedRefusal, secretKey: Uint8Array, auxRand?: Uint8Array): SignedRefusal {
  const unsigned = { ...r, reason: clipUtf8(r.reason, MAX_REFUSAL_REASON_BYTES) }
  return { ...unsigned, signature: signHash(refusalSigningHash(unsigned), secretKey, auxRand) }
}

/** A reason cut to at most `maxBytes` of UTF-8 without splitting a character. */
function clipUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text
  let out = text.slice(0, maxBytes)
  while (Buffer.byteLength(out) > maxBytes - 3) out = out.slice(0, -1)
  return out + '…'
}

// ---- envelope ----

function payloadOf(msg: GossipMessage): Uint8Array {
  switch (msg.kind) {
    case 'genesis-proposal': {
      const w = new Writer(1024)
      w.bytes32(msg.proposal.roundId, 'roundId').u53(msg.proposal.deadlineMs, 'deadlineMs')
      w.field('genesis', (w) => {
        writeGenesis(w, msg.proposal.genesis)
      })
      return w.finish()
    }
    case 'update-request':
      return encodeUpdateRequest(msg.request)
    case 'share':
      return encodeSignatureShare(msg.share)
    case 'partition-request':
      return encodePartitionRequest(msg.request)
    case 'refusal': {
      const w = new Writer(256)
      w.field('refusal', (w) => {
        writeUnsignedRefusal(w, msg.refusal).bytes64(msg.refusal.signature, 'signature')
      })
      return w.finish()
    }
    case 'evidence':
      return encodeEvidence(msg.evidence)
    case 'merge-request':
      return encodeMergeRequest(msg.request)
  }
}

/** The envelope of a gossip message; throws `EncodeError` naming the field. */
export function encodeGossip(msg: GossipMessage): Uint8Array {
  const code = GOSSIP_KINDS.indexOf(msg.kind) + 1
  if (code < 1) throw new EncodeError('gossip envelope.kind', `unknown kind ${String((msg as { kind: unknown }).kind)}`)
  let payload: Uint8Array
  try {
    payload = payloadOf(msg)
  } catch (err) {
    if (err instanceof EncodeError) throw new EncodeError(`gossip envelope.payload.${err.field}`, err.reason)
    throw err
  }
  const w = new Writer(payload.length + 16)
  w.u8(GOSSIP_VERSION).u8(code).bytes(payload, MAX_GOSSIP_PAYLOAD_BYTES, 'gossip envelope.payload')
  return w.finish()
}

/**
 * Decodes an envelope and its payload (structure only); throws `DecodeError` whose path names
 * the field, e.g. `gossip envelope: payload: update request: newBalances: count 300 exceeds limit 256`.
 */
export function decodeGossip(bytes: Uint8Array): GossipMessage {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('gossip envelope', 'input is not a byte array')
  if (bytes.length > MAX_GOSSIP_MESSAGE_BYTES)
    throw new DecodeError('gossip envelope', `${bytes.length} bytes, over the limit of ${MAX_GOSSIP_MESSAGE_BYTES}`)
  const { code, payload } = decodeAll(bytes, 'gossip envelope', (r) => {
    r.version([GOSSIP_VERSION])
    const code = r.u8('kind')
    if (code < 1 || code > GOSSIP_KINDS.length)
      r.fail('kind', `unknown kind ${code} (1..${GOSSIP_KINDS.length}: ${GOSSIP_KINDS.join(', ')})`)
    return { code, payload: r.bytes('payload', MAX_GOSSIP_PAYLOAD_BYTES) }
  })
  const kind = GOSSIP_KINDS[code - 1]
  try {
    return decodePayload(kind, payload)
  } catch (err) {
    if (err instanceof DecodeError) throw new DecodeError(`gossip envelope: payload: ${err.path}`, err.reason)
    throw err
  }
}

function decodePayload(kind: GossipKind, payload: Uint8Array): GossipMessage {
  switch (kind) {
    case 'genesis-proposal':
      return {
        kind,
        proposal: decodeAll(payload, 'genesis proposal', (r) => ({
          roundId: r.bytes32('roundId'),
          deadlineMs: r.u53('deadlineMs'),
          genesis: r.field('genesis', readGenesis)
        }))
      }
    case 'update-request':
      return { kind, request: decodeUpdateRequest(payload) }
    case 'share':
      return { kind, share: decodeSignatureShare(payload) }
    case 'partition-request':
      return { kind, request: decodePartitionRequest(payload) }
    case 'refusal':
      return { kind, refusal: decodeAll(payload, 'refusal', readRefusal) }
    case 'evidence':
      return { kind, evidence: decodeEvidence(payload) }
    case 'merge-request':
      return { kind, request: decodeMergeRequest(payload) }
  }
}

/** The pool's topic: the same on every member, derived from the sorted member peer ids. */
export function poolTopic(memberPeerIds: readonly string[]): string {
  const ids = [...memberPeerIds].sort().join(',')
  return `/poolboard/pool/1/${toHex(sha256(new TextEncoder().encode(ids))).slice(0, 32)}`
}

// ---- the transport ----

export type DropReason = 'unsigned' | 'not-member' | 'too-large' | 'malformed' | 'forged' | 'wrong-pool' | 'busy'

export interface GossipCounters {
  received: number
  delivered: number
  published: number
  publishFailed: number
  dropped: Partial<Record<DropReason, number>>
}

export interface PoolGossipOptions {
  pubsub: GossipSub
  topic: string
  isMember: (peerId: string) => boolean
  logger: Logger
  /** Called with every well-formed message from a member (signatures are the caller's to check). */
  onMessage: (msg: GossipMessage, from: string) => void
  /** Time between two log lines about dropped messages of one reason. */
  dropLogIntervalMs?: number
}

const DEFAULT_DROP_LOG_INTERVAL_MS = 10_000
const SUBSCRIBER_POLL_MS = 50

/**
 * The pool's gossip topic on this node. Every message is decoded before it is delivered or
 * forwarded: a malformed one, or one not signed by a member's libp2p key, is rejected (gossipsub
 * then neither delivers nor forwards it, and lowers the sender's score), counted, and logged at
 * most once per interval and reason.
 */
export class PoolGossip {
  readonly topic: string
  private readonly counters: GossipCounters = { received: 0, delivered: 0, published: 0, publishFailed: 0, dropped: {} }
  private readonly dropLog: LogLimiter
  private readonly decoded = new WeakMap<Message, GossipMessage>()
  private readonly listener = (event: CustomEvent<Message>): void => {
    this.deliver(event.detail)
  }
  private started = false

  constructor(private readonly options: PoolGossipOptions) {
    this.topic = options.topic
    this.dropLog = new LogLimiter(options.logger, options.dropLogIntervalMs ?? DEFAULT_DROP_LOG_INTERVAL_MS)
  }

  start(): void {
    const { pubsub } = this.options
    pubsub.topicValidators.set(this.topic, (_peer, message) => this.validate(message))
    pubsub.addEventListener('message', this.listener)
    pubsub.subscribe(this.topic)
    this.started = true
  }

  stop(): void {
    if (!this.started) return
    this.started = false
    const { pubsub } = this.options
    pubsub.removeEventListener('message', this.listener)
    pubsub.topicValidators.delete(this.topic)
    try {
      pubsub.unsubscribe(this.topic)
    } catch {
      /* libp2p already stopped */
    }
  }

  /** Publishes to every subscribed member; returns how many peers it went to (0 if it could not be sent). */
  async publish(msg: GossipMessage): Promise<number> {
    const bytes = encodeGossip(msg)
    if (bytes.length > MAX_GOSSIP_MESSAGE_BYTES)
      throw new EncodeError('gossip envelope', `${bytes.length} bytes, over the limit of ${MAX_GOSSIP_MESSAGE_BYTES}`)
    try {
      const result = await this.options.pubsub.publish(this.topic, bytes)
      this.counters.published++
      return result.recipients.length
    } catch (err) {
      this.counters.publishFailed++
      this.options.logger.debug({ kind: msg.kind, err: (err as Error).message }, 'gossip publish failed')
      return 0
    }
  }

  /** Peer ids subscribed to the pool's topic. */
  subscribers(): string[] {
    return this.options.pubsub.getSubscribers(this.topic).map((p) => p.toString())
  }

  /**
   * Waits (at most `timeoutMs`) until every peer in `peerIds` is subscribed to the topic: gossip
   * published before a peer's subscription is known would not reach it. Returns the ones missing.
   */
  async waitForSubscribers(peerIds: readonly string[], timeoutMs: number): Promise<string[]> {
    const deadlineMs = Date.now() + timeoutMs
    for (;;) {
      const subscribed = new Set(this.subscribers())
      const missing = peerIds.filter((p) => !subscribed.has(p))
      if (missing.length === 0 || Date.now() >= deadlineMs) return missing
      await sleep(SUBSCRIBER_POLL_MS)
    }
  }

  /** Counts and logs (rate-limited) a message the pool service found invalid after delivery. */
  drop(reason: DropReason, from: string, detail: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1
    this.dropLog.log('warn', reason, { reason, from, detail }, 'dropped a gossip message')
  }

  stats(): GossipCounters {
    return { ...this.counters, dropped: { ...this.counters.dropped } }
  }

  private validate(message: Message): TopicValidatorResult {
    this.counters.received++
    if (message.type !== 'signed') {
      this.drop('unsigned', '?', "a message without its publisher's signature")
      return TopicValidatorResult.Reject
    }
    const from = message.from.toString()
    if (!this.options.isMember(from)) {
      this.drop('not-member', from, 'published by a peer that is not a pool member')
      return TopicValidatorResult.Reject
    }
    if (message.data.length > MAX_GOSSIP_MESSAGE_BYTES) {
      this.drop('too-large', from, `${message.data.length} bytes, over the limit of ${MAX_GOSSIP_MESSAGE_BYTES}`)
      return TopicValidatorResult.Reject
    }
    try {
      this.decoded.set(message, decodeGossip(message.data))
    } catch (err) {
      this.drop('malformed', from, (err as Error).message)
      return TopicValidatorResult.Reject
    }
    return TopicValidatorResult.Accept
  }

  private deliver(message: Message): void {
    if (message.topic !== this.topic || message.type !== 'signed') return
    let msg = this.decoded.get(message)
    if (msg === undefined) {
      try {
        msg = decodeGossip(message.data)
      } catch (err) {
        this.drop('malformed', message.from.toString(), (err as Error).message)
        return
      }
    }
    this.counters.delivered++
    this.options.onMessage(msg, message.from.toString())
  }
}
