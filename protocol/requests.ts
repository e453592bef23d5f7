/**
 * Gossiped round objects: update requests, partition requests, and signature shares.
 *
 * Update request (version 1), signed by the proposer over `poolboard/update-request`:
 *
 *     version u8 = 1 | poolId 32 | from: state ref (pool ref | stateNumber u32) | fromStateHash 32
 *     | proposer 32 | heightT u32 | newBalances varint n (1..1024) × u64
 *     | payment (payer 32 | payee 32 | amountSats u64) | deadlineMs u64 | roundId 32
 *     | signature 64
 *
 * Partition request (version 1), signed by the proposer over `poolboard/partition-request`:
 *
 *     version u8 = 1 | poolId 32 | parent: state ref | parentStateHash 32 | proposer 32
 *     | heightT u32 | actives varint n (1..1024) × key 32 (sorted) | newBalances n × u64
 *     | deadlineMs u64 | roundId 32 | signature 64
 *
 * Merge request (version 1), signed by the proposer over `poolboard/merge-request`:
 *
 *     version u8 = 1 | poolId 32 | from: state ref (the frozen pool, state N) | fromStateHash 32
 *     | proposer 32 | heightT u32 | newBalances varint n (1..256) × u64 | deadlineMs u64
 *     | roundId 32 | signature 64
 *
 * Signature share (version 1): one member's signature over a subject hash, for a round:
 *
 *     version u8 = 1 | kind u8 (0 = state hash, 1 = partition statement id) | poolId 32
 *     | roundId 32 | subject 32 | member 32 | signature 64
 *
 * The signed hash of a share is `subject` itself (already a tagged hash: a state hash or a
 * statement id). A share proves only that `member` signed `subject`; the receiver compares
 * `subject` with the hash of the object it expects.
 */
import { Writer, decodeAll, EncodeError, type Reader } from './codec.js'
import {
  checkObjectSize,
  readBalances,
  readHeight,
  readSats,
  readSortedKeys,
  readStateRef,
  writeBalances,
  writeSats,
  writeSortedKeys,
  writeStateRef,
  type StateRef
} from './common.js'
import { TAGS, type Tag, taggedHash } from './hash.js'
import { signHash, verifyHash, ZERO_AUX } from './keys.js'
import { MAX_MEMBERS } from './limits.js'

export const UPDATE_REQUEST_VERSION = 1
export const PARTITION_REQUEST_VERSION = 1
export const SIGNATURE_SHARE_VERSION = 1
export const MERGE_REQUEST_VERSION = 1

/** A payment inside a (sub-)pool: `amountSats` moves from `payer` to `payee`. */
export interface Payment {
  payer: Uint8Array
  payee: Uint8Array
  amountSats: bigint
}

/** Proposal to move a (sub-)pool from state N (`from`) to N+1. */
export interface UpdateRequest {
  poolId: Uint8Array
  from: StateRef
  /** `stateHash` of state N, so that everyone agrees on the starting point. */
  fromStateHash: Uint8Array
  proposer: Uint8Array
  /** Height T of the new state's Update (its kick-outs unlock at T + X). */
  heightT: number
  /** Balances of state N+1, aligned with the pool's members. */
  newBalances: bigint[]
  payment: Payment
  /** The round fails if not complete by this time (ms since the Unix epoch, by the proposer's clock). */
  deadlineMs: number
  /** 32 random bytes chosen by the proposer, naming the round. */
  roundId: Uint8Array
  /** Proposer's BIP340 signature over `updateRequestSigningHash`. */
  signature: Uint8Array
}
export type UnsignedUpdateRequest = Omit<UpdateRequest, 'signature'>

/** Proposal to partition a (sub-)pool state among `actives`. */
export interface PartitionRequest {
  poolId: Uint8Array
  parent: StateRef
  parentStateHash: Uint8Array
  proposer: Uint8Array
  /** Height T of the partition (its sub-state 0 kick-outs unlock at T + X). */
  heightT: number
  /** Sorted keys of the actives. */
  actives: Uint8Array[]
  /** New balances of the actives, aligned with `actives`. */
  newBalances: bigint[]
  deadlineMs: number
  roundId: Uint8Array
  signature: Uint8Array
}
export type UnsignedPartitionRequest = Omit<PartitionRequest, 'signature'>

/**
 * Proposal to fold every partition of a frozen (sub-)pool's state N back into it: state N+1 of that
 * pool, whose balances are each member's balance in the partition that holds it now (or at N, for
 * a member that never moved). Every member of the pool signs it, as for an update.
 */
export interface MergeRequest {
  poolId: Uint8Array
  from: StateRef
  fromStateHash: Uint8Array
  proposer: Uint8Array
  heightT: number
  /** Balances of state N+1, aligned with the pool's members: the folded ones. */
  newBalances: bigint[]
  deadlineMs: number
  roundId: Uint8Array
  signature: Uint8Array
}
export type UnsignedMergeRequest = Omit<MergeRequest, 'signature'>

export type ShareKind = 'state' | 'statement'

/** One member's signature over a state hash or a statement id, within a round. */
export interface SignatureShare {
  kind: ShareKind
  poolId: Uint8Array
  roundId: Uint8Array
  /** The hash signed: a `stateHash` (kind 'state') or a `statementId` (kind 'statement'). */
  subject: Uint8Array
  member: Uint8Array
  signature: Uint8Array
}

// ---- payment ----

export function writePayment(w: Writer, p: Payment): void {
  w.bytes32(p.payer, 'payment.payer').bytes32(p.payee, 'payment.payee')
  writeSats(w, p.amountSats, 'payment.amountSats')
}

export function readPayment(r: Reader, name: string): Payment {
  return r.field(name, (r) => ({
    payer: r.bytes32('payer'),
    payee: r.bytes32('payee'),
    amountSats: readSats(r, 'amountSats')
  }))
}

/** A counted list of balances: varint n (1..MAX_MEMBERS) × u64. */
function writeBalanceList(w: Writer, balances: readonly bigint[], field: string): void {
  w.count(balances.length, MAX_MEMBERS, field)
  writeBalances(w, balances, field)
}

function readBalanceList(r: Reader, name: string): bigint[] {
  const n = r.count(name, MAX_MEMBERS, 8)
  if (n < 1) r.fail(name, 'at least one balance required')
  return readBalances(r, name, n)
}

/**
 * The one codec of a request its proposer signs: the unsigned encoding, the same with the
 * proposer's signature appended, a strict decoder, and the signature over the tagged hash of the
 * unsigned encoding. Update, partition and merge requests differ only in their fields.
 */
function proposerSignedCodec<U extends { proposer: Uint8Array }, S extends U & { signature: Uint8Array }>(
  name: string,
  tag: Tag,
  write: (w: Writer, q: U) => Writer,
  read: (r: Reader) => U,
  bytesHint: (q: U) => number
) {
  const encodeUnsigned = (q: U): Uint8Array => {
    const w = new Writer(bytesHint(q))
    w.field(name, (w) => write(w, q))
    return w.finish()
  }
  const signingHash = (q: U): Uint8Array => taggedHash(tag, encodeUnsigned(q))
  return {
    encodeUnsigned,
    encode: (q: S): Uint8Array => {
      const w = new Writer(bytesHint(q) + 64)
      w.field(name, (w) => write(w, q).bytes64(q.signature, 'signature'))
      return w.finish()
    },
    decode: (bytes: Uint8Array): S => {
      checkObjectSize(bytes, name)
      return decodeAll(bytes, name, (r) => ({ ...read(r), signature: r.bytes64('signature') }) as S)
    },
    signingHash,
    sign: (q: U, secretKey: Uint8Array, auxRand: Uint8Array = ZERO_AUX): S =>
      ({ ...q, signature: signHash(signingHash(q), secretKey, auxRand) }) as S,
    verify: (q: S): boolean => {
      let h: Uint8Array
      try {
        h = signingHash(q)
      } catch {
        return false
      }
      return verifyHash(q.signature, h, q.proposer)
    }
  }
}

// ---- update request ----

function writeUnsignedUpdateRequest(w: Writer, q: UnsignedUpdateRequest): Writer {
  w.u8(UPDATE_REQUEST_VERSION)
  w.bytes32(q.poolId, 'poolId')
  w.field('from', (w) => writeStateRef(w, q.from))
  w.bytes32(q.fromStateHash, 'fromStateHash')
  w.bytes32(q.proposer, 'proposer')
  w.u32(q.heightT, 'heightT')
  if (q.newBalances.length < 1) throw new EncodeError('newBalances', 'at least one balance required')
  writeBalanceList(w, q.newBalances, 'newBalances')
  writePayment(w, q.payment)
  w.u53(q.deadlineMs, 'deadlineMs')
  return w.bytes32(q.roundId, 'roundId')
}

function readUnsignedUpdateRequest(r: Reader): UnsignedUpdateRequest {
  r.version([UPDATE_REQUEST_VERSION])
  return {
    poolId: r.bytes32('poolId'),
    from: readStateRef(r, 'from'),
    fromStateHash: r.bytes32('fromStateHash'),
    proposer: r.bytes32('proposer'),
    heightT: readHeight(r, 'heightT'),
    newBalances: readBalanceList(r, 'newBalances'),
    payment: readPayment(r, 'payment'),
    deadlineMs: r.u53('deadlineMs'),
    roundId: r.bytes32('roundId')
  }
}

const updateRequestCodec = proposerSignedCodec<UnsignedUpdateRequest, UpdateRequest>(
  'update request',
  TAGS.updateRequest,
  writeUnsignedUpdateRequest,
  readUnsignedUpdateRequest,
  (q) => 256 + q.newBalances.length * 8
)
/** The unsigned encoding (everything but the signature). */
export const encodeUnsignedUpdateRequest = updateRequestCodec.encodeUnsigned
export const encodeUpdateRequest = updateRequestCodec.encode
/** Decode (structure only: the signature and the rules are checked apart). */
export const decodeUpdateRequest = updateRequestCodec.decode
/** Tagged hash (`poolboard/update-request`) of the unsigned encoding. */
export const updateRequestSigningHash = updateRequestCodec.signingHash
/** Sign as proposer (the caller's key must be `q.proposer`). */
export const signUpdateRequest = updateRequestCodec.sign
/** True if the proposer's signature is valid. Never throws. */
export const verifyUpdateRequestSignature = updateRequestCodec.verify

// ---- partition request ----

function writeUnsignedPartitionRequest(w: Writer, q: UnsignedPartitionRequest): Writer {
  w.u8(PARTITION_REQUEST_VERSION)
  w.bytes32(q.poolId, 'poolId')
  w.field('parent', (w) => writeStateRef(w, q.parent))
  w.bytes32(q.parentStateHash, 'parentStateHash')
  w.bytes32(q.proposer, 'proposer')
  w.u32(q.heightT, 'heightT')
  writeSortedKeys(w, q.actives, 1, MAX_MEMBERS, 'actives')
  if (q.newBalances.length !== q.actives.length) {
    throw new EncodeError(
      'newBalances',
      `expected ${q.actives.length} balances (one per active), got ${q.newBalances.length}`
    )
  }
  writeBalances(w, q.newBalances, 'newBalances')
  w.u53(q.deadlineMs, 'deadlineMs')
  return w.bytes32(q.roundId, 'roundId')
}

function readUnsignedPartitionRequest(r: Reader): UnsignedPartitionRequest {
  r.version([PARTITION_REQUEST_VERSION])
  const poolId = r.bytes32('poolId')
  const parent = readStateRef(r, 'parent')
  const parentStateHash = r.bytes32('parentStateHash')
  const proposer = r.bytes32('proposer')
  const heightT = readHeight(r, 'heightT')
  const actives = readSortedKeys(r, 'actives', 1, MAX_MEMBERS)
  const newBalances = readBalances(r, 'newBalances', actives.length)
  return {
    poolId,
    parent,
    parentStateHash,
    proposer,
    heightT,
    actives,
    newBalances,
    deadlineMs: r.u53('deadlineMs'),
    roundId: r.bytes32('roundId')
  }
}

const partitionRequestCodec = proposerSignedCodec<UnsignedPartitionRequest, PartitionRequest>(
  'partition request',
  TAGS.partitionRequest,
  writeUnsignedPartitionRequest,
  readUnsignedPartitionRequest,
  (q) => 256 + q.actives.length * 40
)
/** The unsigned encoding (everything but the signature). */
export const encodeUnsignedPartitionRequest = partitionRequestCodec.encodeUnsigned
export const encodePartitionRequest = partitionRequestCodec.encode
/** Decode (structure only: the signature and the rules are checked apart). */
export const decodePartitionRequest = partitionRequestCodec.decode
/** Tagged hash (`poolboard/partition-request`) of the unsigned encoding. */
export const partitionRequestSigningHash = partitionRequestCodec.signingHash
/** Sign as proposer (the caller's key must be `q.proposer`). */
export const signPartitionRequest = partitionRequestCodec.sign
/** True if the proposer's signature is valid. Never throws. */
export const verifyPartitionRequestSignature = partitionRequestCodec.verify

// ---- merge request ----

function writeUnsignedMergeRequest(w: Writer, q: UnsignedMergeRequest): Writer {
  w.u8(MERGE_REQUEST_VERSION)
  w.bytes32(q.poolId, 'poolId')
  w.field('from', (w) => writeStateRef(w, q.from))
  w.bytes32(q.fromStateHash, 'fromStateHash')
  w.bytes32(q.proposer, 'proposer')
  w.u32(q.heightT, 'heightT')
  if (q.newBalances.length < 1) throw new EncodeError('newBalances', 'at least one balance required')
  writeBalanceList(w, q.newBalances, 'newBalances')
  w.u53(q.deadlineMs, 'deadlineMs')
  return w.bytes32(q.roundId, 'roundId')
}

function readUnsignedMergeRequest(r: Reader): UnsignedMergeRequest {
  r.version([MERGE_REQUEST_VERSION])
  return {
    poolId: r.bytes32('poolId'),
    from: readStateRef(r, 'from'),
    fromStateHash: r.bytes32('fromStateHash'),
    proposer: r.bytes32('proposer'),
    heightT: readHeight(r, 'heightT'),
    newBalances: readBalanceList(r, 'newBalances'),
    deadlineMs: r.u53('deadlineMs'),
    roundId: r.bytes32('roundId')
  }
}

const mergeRequestCodec = proposerSignedCodec<UnsignedMergeRequest, MergeRequest>(
  'merge request',
  TAGS.mergeRequest,
  writeUnsignedMergeRequest,
  readUnsignedMergeRequest,
  (q) => 256 + q.newBalances.length * 8
)
/** The unsigned encoding (everything but the signature). */
export const encodeUnsignedMergeRequest = mergeRequestCodec.encodeUnsigned
export const encodeMergeRequest = mergeRequestCodec.encode
/** Decode (structure only: the signature and the rules are checked apart). */
export const decodeMergeRequest = mergeRequestCodec.decode
/** Tagged hash (`poolboard/merge-request`) of the unsigned encoding. */
export const mergeRequestSigningHash = mergeRequestCodec.signingHash
/** Sign as proposer (the caller's key must be `q.proposer`). */
export const signMergeRequest = mergeRequestCodec.sign
/** True if the proposer's signature is valid. Never throws. */
export const verifyMergeRequestSignature = mergeRequestCodec.verify

// ---- signature share ----

const SHARE_KINDS: readonly ShareKind[] = ['state', 'statement']

export function encodeSignatureShare(s: SignatureShare): Uint8Array {
  const kind = SHARE_KINDS.indexOf(s.kind)
  if (kind < 0) throw new EncodeError('signature share.kind', `unknown share kind ${String(s.kind)}`)
  const w = new Writer(1 + 1 + 32 * 4 + 64)
  w.field('signature share', (w) => {
    w.u8(SIGNATURE_SHARE_VERSION).u8(kind)
    w.bytes32(s.poolId, 'poolId')
      .bytes32(s.roundId, 'roundId')
      .bytes32(s.subject, 'subject')
      .bytes32(s.member, 'member')
    w.bytes64(s.signature, 'signature')
  })
  return w.finish()
}

export function decodeSignatureShare(bytes: Uint8Array): SignatureShare {
  checkObjectSize(bytes, 'signature share')
  return decodeAll(bytes, 'signature share', (r) => {
    r.version([SIGNATURE_SHARE_VERSION])
    const k = r.u8('kind')
    const kind = SHARE_KINDS[k]
    if (kind === undefined) r.fail('kind', `unknown share kind ${k} (0 = state, 1 = statement)`)
    return {
      kind,
      poolId: r.bytes32('poolId'),
      roundId: r.bytes32('roundId'),
      subject: r.bytes32('subject'),
      member: r.bytes32('member'),
      signature: r.bytes64('signature')
    }
  })
}

/** Make a share: `member`'s signature over `subject` (a state hash or statement id). */
export function makeSignatureShare(
  params: { kind: ShareKind; poolId: Uint8Array; roundId: Uint8Array; subject: Uint8Array; member: Uint8Array },
  secretKey: Uint8Array,
  auxRand: Uint8Array = ZERO_AUX
): SignatureShare {
  return { ...params, signature: signHash(params.subject, secretKey, auxRand) }
}

/** True if the share's signature is `member`'s over `subject`. Never throws. */
export function verifySignatureShare(s: SignatureShare): boolean {
  return verifyHash(s.signature, s.subject, s.member)
}
