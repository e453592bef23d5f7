/**
 * Equivocation evidence: two conflicting partition statements (different, with a common spent
 * outpoint) that both carry a valid signature of the same member. It is portable: anyone holding
 * the evidence bytes and the poolId can check it, without any other state.
 *
 * Only what the proof needs is kept: the member, each statement's unsigned encoding and that
 * member's signature on it. The two statements are ordered by statement id, so one pair and one
 * member always give the same encoding (up to the signatures' own bytes).
 *
 * Encoding (version 1):
 *
 *     version u8 = 1 | member 32
 *     | first:  unsigned partition statement | firstSignature 64
 *     | second: unsigned partition statement | secondSignature 64
 *     with statementId(first) < statementId(second) (byte order)
 *
 * `evidenceId` = taggedHash('poolboard/evidence', member || statementId(first) || statementId(second)),
 * which does not depend on the signature bytes: use it to de-duplicate.
 */
import { compareBytes, equalBytes } from './bytes.js'
import { Writer, decodeAll } from './codec.js'
import { OK, checkObjectSize, fail, indexOfKey, short, type Verdict } from './common.js'
import { TAGS, taggedHash } from './hash.js'
import { verifyHash, type VerifySignature } from './keys.js'
import {
  conflictingOutpoints,
  encodeUnsignedStatement,
  readUnsignedStatement,
  statementId,
  statementSignatureOf,
  type PartitionStatement
} from './statement.js'

export const EVIDENCE_VERSION = 1

export interface EquivocationEvidence {
  /** The member who signed both statements. */
  member: Uint8Array
  /** The statement with the smaller id (its `signatures` are not part of the evidence). */
  first: PartitionStatement
  firstSignature: Uint8Array
  /** The statement with the larger id. */
  second: PartitionStatement
  secondSignature: Uint8Array
}

export function encodeEvidence(ev: EquivocationEvidence): Uint8Array {
  const a = encodeUnsignedStatement(ev.first)
  const b = encodeUnsignedStatement(ev.second)
  const w = new Writer(1 + 32 + a.length + b.length + 128)
  w.field('equivocation evidence', (w) => {
    w.u8(EVIDENCE_VERSION).bytes32(ev.member, 'member')
    w.raw(a).bytes64(ev.firstSignature, 'firstSignature')
    w.raw(b).bytes64(ev.secondSignature, 'secondSignature')
  })
  return w.finish()
}

/** Decode (structure and canonical order); throws `DecodeError` naming the field. */
export function decodeEvidence(bytes: Uint8Array): EquivocationEvidence {
  checkObjectSize(bytes, 'equivocation evidence')
  return decodeAll(bytes, 'equivocation evidence', (r) => {
    r.version([EVIDENCE_VERSION])
    const member = r.bytes32('member')
    const first = r.field('first', readUnsignedStatement)
    const firstSignature = r.bytes64('firstSignature')
    const second = r.field('second', readUnsignedStatement)
    const secondSignature = r.bytes64('secondSignature')
    const c = compareBytes(statementId(first), statementId(second))
    if (c === 0) r.fail('second', 'is the same statement as first')
    if (c > 0) r.fail('second', 'statements not in canonical order (first must have the smaller statement id)')
    return { member, first, firstSignature, second, secondSignature }
  })
}

/** De-duplication id of an evidence (independent of the signature bytes). */
export function evidenceId(ev: EquivocationEvidence): Uint8Array {
  return taggedHash(TAGS.evidence, ev.member, statementId(ev.first), statementId(ev.second))
}

/**
 * The evidence that `member` signed `a` (signature `sa`) and `b` (signature `sb`), the statements in
 * canonical order. Checks nothing (see `makeEvidence`, `verifyEvidence`); pass the statement ids
 * when they are known.
 */
export function buildEvidence(
  member: Uint8Array,
  a: PartitionStatement,
  sa: Uint8Array,
  b: PartitionStatement,
  sb: Uint8Array,
  idA: Uint8Array = statementId(a),
  idB: Uint8Array = statementId(b)
): EquivocationEvidence {
  const [first, firstSignature, second, secondSignature] = compareBytes(idA, idB) < 0 ? [a, sa, b, sb] : [b, sb, a, sa]
  return {
    member: new Uint8Array(member),
    first: { ...first, signatures: [] },
    firstSignature: new Uint8Array(firstSignature),
    second: { ...second, signatures: [] },
    secondSignature: new Uint8Array(secondSignature)
  }
}

/**
 * Build the evidence that `member` signed both `a` and `b`, from the signatures they carry.
 * Throws `RangeError` if a signature is missing or invalid, or if the statements do not conflict.
 */
export function makeEvidence(a: PartitionStatement, b: PartitionStatement, member: Uint8Array): EquivocationEvidence {
  const sa = statementSignatureOf(a, member)
  const sb = statementSignatureOf(b, member)
  if (sa === undefined || sb === undefined)
    throw new RangeError(`member ${short(member)} has not signed both statements`)
  return checked(buildEvidence(member, a, sa, b, sb), a.poolId)
}

function checked(ev: EquivocationEvidence, poolId: Uint8Array, verify?: VerifySignature): EquivocationEvidence {
  const v = verifyEvidence(ev, poolId, verify)
  if (!v.ok) throw new RangeError(`not valid evidence: ${v.reason}`)
  return ev
}

/**
 * Every equivocation the two statements prove: one evidence per member who has a valid signature
 * on both (checked with `verify`, default `verifyHash`), in member key order. Empty if they do not
 * conflict. Throws `RangeError` if they do not make valid evidence (malformed, or of two pools).
 */
export function findEquivocations(
  a: PartitionStatement,
  b: PartitionStatement,
  verify: VerifySignature = verifyHash
): EquivocationEvidence[] {
  if (conflictingOutpoints(a, b).length === 0) return []
  const idA = statementId(a)
  const idB = statementId(b)
  const out: EquivocationEvidence[] = []
  for (const { index, signature } of a.signatures) {
    const key = a.actives[index]
    if (key === undefined) continue
    const other = statementSignatureOf(b, key)
    if (other === undefined) continue
    if (!verify(signature, idA, key) || !verify(other, idB, key)) continue
    const ev = buildEvidence(key, a, signature, b, other, idA, idB)
    // The loop checked what is about the member (active of both, both signatures); the rest of
    // `verifyEvidence` (structure, pool ids, conflict) is about the pair: check it once.
    out.push(out.length === 0 ? checked(ev, a.poolId, verify) : ev)
  }
  return out
}

/**
 * Check evidence against a pool: both statements well-formed and of `poolId`, different, spending a
 * common outpoint, `member` an active of both, and `member`'s signature valid on each (checked with
 * `verify`, default `verifyHash`).
 * Returns the reason when invalid; never throws.
 */
export function verifyEvidence(
  ev: EquivocationEvidence,
  poolId: Uint8Array,
  verify: VerifySignature = verifyHash
): Verdict {
  let e: EquivocationEvidence
  try {
    e = decodeEvidence(encodeEvidence(ev))
  } catch (err) {
    return fail(`malformed evidence: ${(err as Error).message}`)
  }
  if (!equalBytes(e.first.poolId, poolId))
    return fail(`first statement belongs to pool ${short(e.first.poolId)}, not ${short(poolId)}`)
  if (!equalBytes(e.second.poolId, poolId))
    return fail(`second statement belongs to pool ${short(e.second.poolId)}, not ${short(poolId)}`)
  if (conflictingOutpoints(e.first, e.second).length === 0)
    return fail('the statements do not conflict: no common spent outpoint')
  if (indexOfKey(e.first.actives, e.member) < 0)
    return fail(`member ${short(e.member)} is not an active of the first statement`)
  if (indexOfKey(e.second.actives, e.member) < 0)
    return fail(`member ${short(e.member)} is not an active of the second statement`)
  if (!verify(e.firstSignature, statementId(e.first), e.member))
    return fail(`member ${short(e.member)}'s signature on the first statement does not verify`)
  if (!verify(e.secondSignature, statementId(e.second), e.member))
    return fail(`member ${short(e.member)}'s signature on the second statement does not verify`)
  return OK
}
