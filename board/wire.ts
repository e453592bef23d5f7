// The binary encoding of Raft messages, as they travel between the pool's nodes.
//
// Layout (every integer that is an index, a term, a length or a count is a CompactSize varint, see
// protocol/codec.ts; booleans and presence flags are one byte, 0 or 1; node ids are varint-length
// UTF-8 strings of at most maxNodeIdBytes; hashes are exactly 32 bytes, no length prefix):
//
//   message       = version (u8, 2) || type (u8, see TYPE_CODES) || from || to || term || body
//   app           = prevIndex || prevTerm || prevHash || commit || count || entry*
//   entry         = index || term || entryType (u8: 0 normal, 1 confChange) || data (varint len + bytes) || hash
//   appResp       = index || reject (bool) || hintIndex || hintTerm
//   vote, preVote = lastIndex || lastTerm || force (bool)
//   voteResp, preVoteResp = reject (bool)
//   heartbeat     = commit || optional context
//   heartbeatResp = optional context
//   snap          = snapshot
//   snapshot      = index || term || hash || configuration || data (varint len + bytes)
//   configuration = count || voter id* || count || learner id*
//   timeoutNow    = (nothing)
//   readIndex     = context
//   readIndexResp = index || context
//   transferLeader = target node id
//   optional x    = 0 | 1 || x
//
// Signed votes (version 2; see docs/raft.md):
//   voteResp, preVoteResp += optional signature (varint len + bytes, at most 64)
//   app, heartbeat, snap, timeoutNow += optional certificate
//   certificate   = term || leader node id || count || voter id* || count || (voter node id || signature)*
//
// Signed acknowledgements (version 3; used with lying voters, RaftConfig.faultyVoters):
//   appResp, voteResp, preVoteResp += optional (hash || locked || signature)
//   vote, preVote += optional (commit index || hash)
//   app, heartbeat, snap += optional commitCertificate
//   commitCertificate = count || signedAck*
//   signedAck     = voter node id || term || index || hash || locked || signature
//
// The encoding is canonical: a decoder accepts exactly the bytes the encoder produces (minimal
// varints, booleans 0 or 1, well-formed UTF-8, no trailing bytes), so decode(encode(m)) equals m
// and encode(decode(b)) equals b for every accepted b.
//
// What is checked here: the version, the type, every length and count against WireLimits, every
// integer is a non-negative safe integer, hashes are 32 bytes, enums and booleans are in range,
// node ids are non-empty. What is not: Raft-level consistency (contiguous entry indexes, the hash
// chain, terms that make sense). That is the core's job, so that a leader sending a malformed
// append still raises the core's alarm with its proof rather than vanishing as a bad frame.
//
// Pure: no I/O, no clock, no module-level mutable state.

import { copyBytes } from '../protocol/bytes.js'
import { DecodeError, EncodeError, Reader, Writer, varintSize } from '../protocol/codec.js'
import { MAX_MEMBERS } from '../protocol/limits.js'
import { readConfiguration, writeConfiguration, type ConfigurationLimits } from './configuration.js'
import type {
  Configuration,
  Entry,
  EntryType,
  Message,
  MessageType,
  NodeId,
  ElectionCertificate,
  CommitCertificate,
  Snapshot
} from './raft/types.js'

/** The only version this code reads and writes. */
export const WIRE_VERSION = 3
/** Every hash in a message (entry hashes, prevHash, snapshot hash) is a sha256 digest. */
export const WIRE_HASH_BYTES = 32
const CONTEXT = 'raft message'

/** Size and count limits of the decoder (and of the encoder, so that a node never sends what its peers refuse). */
export interface WireLimits {
  /**
   * Largest encoded message other than `snap`, in bytes. Also the frame limit of the raft stream.
   * Must hold the largest append the core builds: about the core's maxMessageBytes of entry bytes,
   * or one entry of maxEntryBytes, plus a few bytes per entry.
   */
  readonly maxMessageBytes: number
  /** Most entries in one append message. Must be at least the core's maxMessageBytes / ENTRY_OVERHEAD_BYTES + 1. */
  readonly maxEntriesPerMessage: number
  /** Largest payload of one entry, in bytes. Must be at least the core's maxEntryBytes. */
  readonly maxEntryBytes: number
  /** Largest snapshot payload (the application's state), in bytes. */
  readonly maxSnapshotBytes: number
  /** Longest node id, in UTF-8 bytes. */
  readonly maxNodeIdBytes: number
  /** Most voters plus learners in a snapshot's configuration. */
  readonly maxConfigurationNodes: number
  /** Longest read-index context, in bytes (the core refuses more than 256). */
  readonly maxReadContextBytes: number
}

export const DEFAULT_WIRE_LIMITS: WireLimits = Object.freeze({
  // The core's defaults (1 MiB of entry bytes per append, 1 MiB per entry) need at most ~1.2 MiB.
  maxMessageBytes: 4 * 1024 * 1024,
  // 1 MiB / 49 bytes of per-entry overhead is ~21,400 empty entries; three times that for margin.
  maxEntriesPerMessage: 65_536,
  maxEntryBytes: 1024 * 1024,
  maxSnapshotBytes: 256 * 1024 * 1024,
  // libp2p peer ids (protocol/limits.ts MAX_PEER_ID_BYTES).
  maxNodeIdBytes: 128,
  // A configuration lists at most the pool's members (protocol/limits.ts, the Raft core's limit too).
  maxConfigurationNodes: MAX_MEMBERS,
  maxReadContextBytes: 256
})

function configurationLimits(limits: WireLimits): ConfigurationLimits {
  return { maxNodes: limits.maxConfigurationNodes, maxNodeIdBytes: limits.maxNodeIdBytes }
}

/** Fills in defaults and checks that every limit is a positive safe integer; throws a RangeError naming the key. */
export function resolveWireLimits(overrides: Partial<WireLimits> = {}): WireLimits {
  const limits: WireLimits = { ...DEFAULT_WIRE_LIMITS }
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue
    if (!(key in DEFAULT_WIRE_LIMITS)) throw new RangeError(`wire limits: unknown key ${key}`)
    ;(limits as unknown as Record<string, number>)[key] = value
  }
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new RangeError(`wire limits: ${key} must be a positive integer, got ${String(value)}`)
  }
  if (limits.maxEntryBytes > limits.maxMessageBytes) {
    throw new RangeError(
      `wire limits: maxEntryBytes (${limits.maxEntryBytes}) must not exceed maxMessageBytes (${limits.maxMessageBytes})`
    )
  }
  return Object.freeze(limits)
}

/** The largest encoded `snap` message the limits allow, in bytes (snapshot payload plus every other field at its maximum). */
export function maxSnapMessageBytes(limits: WireLimits): number {
  const id = 9 + limits.maxNodeIdBytes
  return (
    2 + 2 * id + 9 + 9 + 9 + WIRE_HASH_BYTES + 2 * 9 + limits.maxConfigurationNodes * id + 9 + limits.maxSnapshotBytes
  )
}

/** The largest encoded message of any type the limits allow, in bytes. */
export function maxEncodedMessageBytes(limits: WireLimits): number {
  return Math.max(limits.maxMessageBytes, maxSnapMessageBytes(limits))
}

/** Type codes on the wire. Never renumber: add new codes at the end. */
export const TYPE_CODES: Readonly<Record<MessageType, number>> = Object.freeze({
  app: 1,
  appResp: 2,
  vote: 3,
  voteResp: 4,
  preVote: 5,
  preVoteResp: 6,
  heartbeat: 7,
  heartbeatResp: 8,
  snap: 9,
  timeoutNow: 10,
  readIndex: 11,
  readIndexResp: 12,
  transferLeader: 13
})

const TYPE_NAMES: readonly (MessageType | undefined)[] = (() => {
  const names: (MessageType | undefined)[] = []
  for (const [name, code] of Object.entries(TYPE_CODES)) names[code] = name as MessageType
  return names
})()

const SNAP_CODE = TYPE_CODES.snap
/** Fewest bytes an encoded entry takes: index, term, type, empty data, hash. */
const MIN_ENTRY_BYTES = 1 + 1 + 1 + 1 + WIRE_HASH_BYTES
/** Upper bound of a varint. */
const V = 9

/** Every message type, in type-code order. */
export const MESSAGE_TYPES: readonly MessageType[] = Object.freeze(
  TYPE_NAMES.filter((t): t is MessageType => t !== undefined)
)

/** The message type of an encoded message, read from its header without decoding it (null if the header is not valid). */
export function peekMessageType(bytes: Uint8Array): MessageType | null {
  if (bytes.length < 2 || bytes[0] !== WIRE_VERSION) return null
  return TYPE_NAMES[bytes[1]!] ?? null
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes a message. Throws an EncodeError naming the field when the message is out of range for
 * the limits (a node id too long, a hash that is not 32 bytes, too many entries, ...).
 * The result may be a view into a slightly larger buffer.
 */
export function encodeMessage(m: Message, limits: WireLimits = DEFAULT_WIRE_LIMITS): Uint8Array {
  const code = TYPE_CODES[m.type]
  if (code === undefined) throw new EncodeError('type', `unknown message type ${String(m.type)}`)
  const w = new Writer(sizeBound(m))
  w.u8(WIRE_VERSION).u8(code)
  nodeId(w, m.from, limits, 'from')
  nodeId(w, m.to, limits, 'to')
  w.varint(m.term, 'term')
  switch (m.type) {
    case 'app': {
      w.varint(m.prevIndex, 'prevIndex').varint(m.prevTerm, 'prevTerm').fixed(m.prevHash, WIRE_HASH_BYTES, 'prevHash')
      w.varint(m.commit, 'commit')
      const entries = m.entries
      w.count(entries.length, limits.maxEntriesPerMessage, 'entries')
      for (let i = 0; i < entries.length; i++) writeEntry(w, entries[i]!, limits)
      optionalCertificate(w, m.certificate, limits)
      optionalCommitCertificate(w, m.commitCertificate, limits)
      break
    }
    case 'appResp':
      w.varint(m.index, 'index')
      bool(w, m.reject, 'reject')
      w.varint(m.hintIndex, 'hintIndex').varint(m.hintTerm, 'hintTerm')
      optionalAck(w, m.ack)
      break
    case 'vote':
    case 'preVote':
      w.varint(m.lastIndex, 'lastIndex').varint(m.lastTerm, 'lastTerm')
      bool(w, m.force, 'force')
      if (m.commit === undefined) w.u8(0)
      else w.u8(1).varint(m.commit.index, 'commit: index').fixed(m.commit.hash, WIRE_HASH_BYTES, 'commit: hash')
      break
    case 'voteResp':
    case 'preVoteResp':
      bool(w, m.reject, 'reject')
      if (m.signature === undefined) w.u8(0)
      else w.u8(1).bytes(m.signature, MAX_VOTE_SIGNATURE_BYTES, 'signature')
      optionalAck(w, m.ack)
      break
    case 'heartbeat':
      w.varint(m.commit, 'commit')
      optionalContext(w, m.context, limits)
      optionalCertificate(w, m.certificate, limits)
      optionalCommitCertificate(w, m.commitCertificate, limits)
      break
    case 'heartbeatResp':
      optionalContext(w, m.context, limits)
      break
    case 'snap':
      writeSnapshot(w, m.snapshot, limits)
      optionalCertificate(w, m.certificate, limits)
      optionalCommitCertificate(w, m.commitCertificate, limits)
      break
    case 'timeoutNow':
      optionalCertificate(w, m.certificate, limits)
      break
    case 'readIndex':
      w.bytes(m.context, limits.maxReadContextBytes, 'context')
      break
    case 'readIndexResp':
      w.varint(m.index, 'index')
      w.bytes(m.context, limits.maxReadContextBytes, 'context')
      break
    case 'transferLeader':
      nodeId(w, m.target, limits, 'target')
      break
    default:
      return unreachable(m)
  }
  const size = w.length
  if (code === SNAP_CODE ? size > maxSnapMessageBytes(limits) : size > limits.maxMessageBytes) {
    throw new EncodeError(
      'message',
      `encoded size ${size} bytes exceeds limit ${code === SNAP_CODE ? maxSnapMessageBytes(limits) : limits.maxMessageBytes}`
    )
  }
  return w.subarray()
}

/** An upper bound of the encoded size, so that the writer never grows. */
function sizeBound(m: Message): number {
  // Small enough for most messages to stay a buffer on the V8 heap (at most 64 bytes): cheaper to
  // make. The constant covers the booleans and presence flags (with the v3 ones).
  let n = 2 + idBound(m.from) + idBound(m.to) + varintSize(m.term) + 4 * V + 5
  if ((m.type === 'voteResp' || m.type === 'preVoteResp') && m.signature !== undefined) n += V + m.signature.length
  const ack = m.type === 'appResp' || m.type === 'voteResp' || m.type === 'preVoteResp' ? m.ack : undefined
  if (ack !== undefined) n += 1 + WIRE_HASH_BYTES + 2 * V + ack.signature.length
  if ((m.type === 'vote' || m.type === 'preVote') && m.commit !== undefined) n += 1 + V + WIRE_HASH_BYTES
  const commitCertificate = 'commitCertificate' in m ? m.commitCertificate : undefined
  if (commitCertificate !== undefined) {
    n += 1 + V
    for (const a of commitCertificate.acks) n += idBound(a.voter) + 4 * V + WIRE_HASH_BYTES + a.signature.length
  }
  const certificate = 'certificate' in m ? m.certificate : undefined
  if (certificate !== undefined) {
    n += 3 * V + idBound(certificate.leader)
    for (const id of certificate.voters) n += idBound(id)
    for (const v of certificate.votes) n += idBound(v.voter) + V + v.signature.length
  }
  switch (m.type) {
    case 'app':
      for (let i = 0; i < m.entries.length; i++) n += m.entries[i]!.data.length + 4 * V + 1 + WIRE_HASH_BYTES
      n += V + WIRE_HASH_BYTES
      break
    case 'heartbeat':
    case 'heartbeatResp':
      n += m.context === null ? 1 : m.context.length + 1 + V
      break
    case 'readIndex':
    case 'readIndexResp':
      n += m.context.length + V
      break
    case 'snap': {
      const c = m.snapshot.meta.configuration
      n += m.snapshot.data.length + 3 * V + WIRE_HASH_BYTES + 2 * V + 4 * V + WIRE_HASH_BYTES
      for (const id of c.voters) n += idBound(id)
      for (const id of c.learners) n += idBound(id)
      break
    }
    case 'transferLeader':
      n += idBound(m.target)
      break
    default:
      break
  }
  return n
}

function idBound(id: NodeId): number {
  return typeof id === 'string' ? 3 * id.length + varintSize(3 * id.length) : 0
}

function nodeId(w: Writer, id: NodeId, limits: WireLimits, field: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new EncodeError(field, 'node id must be a non-empty string')
  w.string(id, limits.maxNodeIdBytes, field)
}

function bool(w: Writer, v: boolean, field: string): void {
  if (typeof v !== 'boolean') throw new EncodeError(field, `not a boolean: ${String(v)}`)
  w.u8(v ? 1 : 0)
}

/** Longest vote signature (Ed25519 and BIP340 signatures are 64 bytes). */
export const MAX_VOTE_SIGNATURE_BYTES = 64

function optionalCertificate(w: Writer, c: ElectionCertificate | undefined, limits: WireLimits): void {
  if (c === undefined) {
    w.u8(0)
    return
  }
  w.u8(1).varint(c.term, 'certificate: term')
  nodeId(w, c.leader, limits, 'certificate: leader')
  w.count(c.voters.length, limits.maxConfigurationNodes, 'certificate: voters')
  for (const id of c.voters) nodeId(w, id, limits, 'certificate: voters')
  w.count(c.votes.length, limits.maxConfigurationNodes, 'certificate: votes')
  for (const v of c.votes) {
    nodeId(w, v.voter, limits, 'certificate: voter')
    w.bytes(v.signature, MAX_VOTE_SIGNATURE_BYTES, 'certificate: signature')
  }
}

type WireAck = { readonly hash: Uint8Array; readonly locked: number; readonly signature: Uint8Array }

function optionalAck(w: Writer, ack: WireAck | undefined): void {
  if (ack === undefined) {
    w.u8(0)
    return
  }
  w.u8(1).fixed(ack.hash, WIRE_HASH_BYTES, 'ack: hash').varint(ack.locked, 'ack: locked')
  w.bytes(ack.signature, MAX_VOTE_SIGNATURE_BYTES, 'ack: signature')
}

function readOptionalAck(r: Reader): { ack?: WireAck } {
  if (!readPresence(r, 'ack')) return {}
  return {
    ack: {
      hash: r.fixed('ack: hash', WIRE_HASH_BYTES),
      locked: r.varint('ack: locked'),
      signature: r.bytes('ack: signature', MAX_VOTE_SIGNATURE_BYTES)
    }
  }
}

function optionalCommitCertificate(w: Writer, c: CommitCertificate | undefined, limits: WireLimits): void {
  if (c === undefined) {
    w.u8(0)
    return
  }
  w.u8(1).count(c.acks.length, limits.maxConfigurationNodes, 'commitCertificate: acks')
  for (const a of c.acks) {
    nodeId(w, a.voter, limits, 'commitCertificate: voter')
    w.varint(a.term, 'commitCertificate: term').varint(a.index, 'commitCertificate: index')
    w.fixed(a.hash, WIRE_HASH_BYTES, 'commitCertificate: hash').varint(a.locked, 'commitCertificate: locked')
    w.bytes(a.signature, MAX_VOTE_SIGNATURE_BYTES, 'commitCertificate: signature')
  }
}

function readOptionalCommitCertificate(r: Reader, limits: WireLimits): { commitCertificate?: CommitCertificate } {
  if (!readPresence(r, 'commitCertificate')) return {}
  const commitCertificate = r.field(
    'commitCertificate',
    (rc): CommitCertificate => ({
      acks: rc.array(
        'acks',
        limits.maxConfigurationNodes,
        () => ({
          voter: readNodeId(rc, 'voter', limits),
          term: rc.varint('term'),
          index: rc.varint('index'),
          hash: rc.fixed('hash', WIRE_HASH_BYTES),
          locked: rc.varint('locked'),
          signature: rc.bytes('signature', MAX_VOTE_SIGNATURE_BYTES)
        }),
        4 + WIRE_HASH_BYTES
      )
    })
  )
  return { commitCertificate }
}

function readOptionalCertificate(r: Reader, limits: WireLimits): { certificate?: ElectionCertificate } {
  if (!readPresence(r, 'certificate')) return {}
  const certificate = r.field('certificate', (rc): ElectionCertificate => {
    const term = rc.varint('term')
    const leader = readNodeId(rc, 'leader', limits)
    const voters = rc.array('voters', limits.maxConfigurationNodes, () => readNodeId(rc, 'voters', limits), 2)
    const votes = rc.array(
      'votes',
      limits.maxConfigurationNodes,
      () => ({
        voter: readNodeId(rc, 'voter', limits),
        signature: rc.bytes('signature', MAX_VOTE_SIGNATURE_BYTES)
      }),
      3
    )
    return { term, leader, voters, votes }
  })
  return { certificate }
}

function optionalContext(w: Writer, context: Uint8Array | null, limits: WireLimits): void {
  if (context === null) {
    w.u8(0)
  } else {
    w.u8(1)
    w.bytes(context, limits.maxReadContextBytes, 'context')
  }
}

function entryTypeCode(type: EntryType): number {
  if (type === 'normal') return 0
  if (type === 'confChange') return 1
  throw new EncodeError('entries: type', `unknown entry type ${String(type)}`)
}

function writeEntry(w: Writer, e: Entry, limits: WireLimits): void {
  w.varint(e.index, 'entries: index').varint(e.term, 'entries: term').u8(entryTypeCode(e.type))
  w.bytes(e.data, limits.maxEntryBytes, 'entries: data')
  w.fixed(e.hash, WIRE_HASH_BYTES, 'entries: hash')
}

function writeSnapshot(w: Writer, s: Snapshot, limits: WireLimits): void {
  const meta = s.meta
  w.varint(meta.index, 'snapshot: index').varint(meta.term, 'snapshot: term')
  w.fixed(meta.hash, WIRE_HASH_BYTES, 'snapshot: hash')
  writeConfiguration(w, meta.configuration, configurationLimits(limits), 'snapshot: configuration')
  w.bytes(s.data, limits.maxSnapshotBytes, 'snapshot: data')
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface DecodeOptions {
  /**
   * Let byte fields of the result (entry data, snapshot data) be views into `bytes` instead of
   * into a private copy of it. Saves copying a large snapshot; the caller must then never modify
   * `bytes`, and the message keeps the whole of `bytes.buffer` alive. Default false.
   */
  readonly shareInput?: boolean
}

/**
 * Decodes one complete message. Throws a DecodeError whose path names the field on any malformed
 * or out-of-limits input; never anything else, whatever the bytes. Unless `shareInput`, the
 * result shares no memory with `bytes`: the message is decoded from one private copy (one
 * allocation rather than one per entry, and no pinning of a larger network buffer).
 */
export function decodeMessage(
  bytes: Uint8Array,
  limits: WireLimits = DEFAULT_WIRE_LIMITS,
  options: DecodeOptions = {}
): Message {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError(CONTEXT, 'input is not a byte array')
  if (bytes.length > maxEncodedMessageBytes(limits)) {
    throw new DecodeError(CONTEXT, `${bytes.length} bytes exceeds limit ${maxEncodedMessageBytes(limits)}`)
  }
  const r: Reader = new Reader(options.shareInput === true ? bytes : copyBytes(bytes), CONTEXT)
  r.version([WIRE_VERSION])
  const code = r.u8('type')
  const type = TYPE_NAMES[code]
  if (type === undefined) r.fail('type', `unknown message type ${code}`)
  const sizeLimit = code === SNAP_CODE ? maxSnapMessageBytes(limits) : limits.maxMessageBytes
  if (bytes.length > sizeLimit) r.fail('', `${bytes.length} bytes exceeds limit ${sizeLimit} for a ${type} message`)
  const from = readNodeId(r, 'from', limits)
  const to = readNodeId(r, 'to', limits)
  const term = r.varint('term')
  let m: Message
  switch (type) {
    case 'app': {
      const prevIndex = r.varint('prevIndex')
      const prevTerm = r.varint('prevTerm')
      const prevHash = r.fixed('prevHash', WIRE_HASH_BYTES)
      const commit = r.varint('commit')
      const entries = r.array('entries', limits.maxEntriesPerMessage, (rr) => readEntry(rr, limits), MIN_ENTRY_BYTES)
      m = {
        type,
        from,
        to,
        term,
        prevIndex,
        prevTerm,
        prevHash,
        entries,
        commit,
        ...readOptionalCertificate(r, limits),
        ...readOptionalCommitCertificate(r, limits)
      }
      break
    }
    case 'appResp': {
      const index = r.varint('index')
      const reject = readBool(r, 'reject')
      const hintIndex = r.varint('hintIndex')
      const hintTerm = r.varint('hintTerm')
      m = { type, from, to, term, index, reject, hintIndex, hintTerm, ...readOptionalAck(r) }
      break
    }
    case 'vote':
    case 'preVote': {
      const lastIndex = r.varint('lastIndex')
      const lastTerm = r.varint('lastTerm')
      const force = readBool(r, 'force')
      m = readPresence(r, 'commit')
        ? {
            type,
            from,
            to,
            term,
            lastIndex,
            lastTerm,
            force,
            commit: { index: r.varint('commit: index'), hash: r.fixed('commit: hash', WIRE_HASH_BYTES) }
          }
        : { type, from, to, term, lastIndex, lastTerm, force }
      break
    }
    case 'voteResp':
    case 'preVoteResp': {
      const reject = readBool(r, 'reject')
      m = readPresence(r, 'signature')
        ? { type, from, to, term, reject, signature: r.bytes('signature', MAX_VOTE_SIGNATURE_BYTES) }
        : { type, from, to, term, reject }
      m = { ...m, ...readOptionalAck(r) }
      break
    }
    case 'heartbeat': {
      const commit = r.varint('commit')
      const context = readOptionalContext(r, limits)
      m = {
        type,
        from,
        to,
        term,
        commit,
        context,
        ...readOptionalCertificate(r, limits),
        ...readOptionalCommitCertificate(r, limits)
      }
      break
    }
    case 'heartbeatResp':
      m = { type, from, to, term, context: readOptionalContext(r, limits) }
      break
    case 'snap':
      m = {
        type,
        from,
        to,
        term,
        snapshot: r.field('snapshot', (rr) => readSnapshot(rr, limits)),
        ...readOptionalCertificate(r, limits),
        ...readOptionalCommitCertificate(r, limits)
      }
      break
    case 'timeoutNow':
      m = { type, from, to, term, ...readOptionalCertificate(r, limits) }
      break
    case 'readIndex':
      m = { type, from, to, term, context: r.bytes('context', limits.maxReadContextBytes) }
      break
    case 'readIndexResp': {
      const index = r.varint('index')
      m = { type, from, to, term, index, context: r.bytes('context', limits.maxReadContextBytes) }
      break
    }
    case 'transferLeader':
      m = { type, from, to, term, target: readNodeId(r, 'target', limits) }
      break
    default:
      return unreachable(type)
  }
  r.end()
  return m
}

function readNodeId(r: Reader, name: string, limits: WireLimits): NodeId {
  const id = r.string(name, limits.maxNodeIdBytes)
  if (id.length === 0) r.fail(name, 'empty node id')
  return id
}

function readBool(r: Reader, name: string): boolean {
  const b = r.u8(name)
  if (b > 1) r.fail(name, `boolean must be 0 or 1, got ${b}`)
  return b === 1
}

function readPresence(r: Reader, name: string): boolean {
  const present = r.u8(name)
  if (present > 1) r.fail(name, `presence flag must be 0 or 1, got ${present}`)
  return present === 1
}

function readOptionalContext(r: Reader, limits: WireLimits): Uint8Array | null {
  const present = r.u8('context')
  if (present > 1) r.fail('context', `presence flag must be 0 or 1, got ${present}`)
  return present === 0 ? null : r.bytes('context', limits.maxReadContextBytes)
}

function readEntry(r: Reader, limits: WireLimits): Entry {
  const index = r.varint('index')
  const term = r.varint('term')
  const t = r.u8('type')
  if (t > 1) r.fail('type', `unknown entry type ${t}`)
  const data = r.bytesView('data', limits.maxEntryBytes)
  const hash = r.fixed('hash', WIRE_HASH_BYTES)
  return { index, term, type: t === 0 ? 'normal' : 'confChange', data, hash }
}

function readSnapshot(r: Reader, limits: WireLimits): Snapshot {
  const index = r.varint('index')
  const term = r.varint('term')
  const hash = r.fixed('hash', WIRE_HASH_BYTES)
  const configuration = r.field(
    'configuration',
    (rc): Configuration => readConfiguration(rc, configurationLimits(limits))
  )
  const data = r.bytesView('data', limits.maxSnapshotBytes)
  return { meta: { index, term, hash, configuration }, data }
}

function unreachable(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`)
}
