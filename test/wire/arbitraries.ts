// fast-check generators of Raft messages, shared by the codec tests.

import fc from 'fast-check'
import type {
  Configuration,
  ElectionCertificate,
  Entry,
  Message,
  MessageType,
  Snapshot
} from '../../board/raft/types.js'

const utf8 = new TextEncoder()

/** fc.record with ordinary prototypes, so that decoded messages compare deep-equal. */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>
}

/** Node ids: realistic peer ids, short ASCII names and arbitrary Unicode, all within 128 UTF-8 bytes. */
export const arbNodeId: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo',
    '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK',
    '16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY',
    'n1'
  ),
  fc.stringMatching(/^[a-z0-9]{1,12}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }).filter((s) => utf8.encode(s).length <= 128)
)

/** Indexes and terms: mostly small, sometimes anywhere up to 2^53 - 1 (every varint width). */
export const arbIndex: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(1000) },
  { weight: 1, arbitrary: fc.constantFrom(0xfc, 0xfd, 0xffff, 0x10000, 0xffff_ffff, 2 ** 32, Number.MAX_SAFE_INTEGER) },
  { weight: 1, arbitrary: fc.maxSafeNat() }
)

export const arbHash: fc.Arbitrary<Uint8Array> = fc.uint8Array({ minLength: 32, maxLength: 32 })
export const arbContext: fc.Arbitrary<Uint8Array> = fc.uint8Array({ maxLength: 40 })

export const arbEntry: fc.Arbitrary<Entry> = record({
  index: arbIndex,
  term: arbIndex,
  type: fc.constantFrom('normal' as const, 'confChange' as const),
  data: fc.uint8Array({ maxLength: 300 }),
  hash: arbHash
})

export const arbConfiguration: fc.Arbitrary<Configuration> = record({
  voters: fc.array(arbNodeId, { maxLength: 7 }),
  learners: fc.array(arbNodeId, { maxLength: 5 })
})

export const arbSnapshot: fc.Arbitrary<Snapshot> = record({
  meta: record({ index: arbIndex, term: arbIndex, hash: arbHash, configuration: arbConfiguration }),
  data: fc.uint8Array({ maxLength: 2000 })
})

const base = { from: arbNodeId, to: arbNodeId, term: arbIndex }

/** `arb`'s values, half of them with `key` set to a value of `value` (an optional field). */
function withOptional<T extends object, V>(arb: fc.Arbitrary<T>, key: string, value: fc.Arbitrary<V>): fc.Arbitrary<T> {
  return fc
    .tuple(arb, fc.option(value, { nil: undefined }))
    .map(([m, v]) => (v === undefined ? m : ({ ...m, [key]: v } as T)))
}

const arbSignature = fc.uint8Array({ minLength: 0, maxLength: 64 })
const arbCertificate: fc.Arbitrary<ElectionCertificate> = record({
  term: arbIndex,
  leader: arbNodeId,
  voters: fc.array(arbNodeId, { maxLength: 7 }),
  votes: fc.array(record({ voter: arbNodeId, signature: arbSignature }), { maxLength: 7 })
})

/** One generator per message type; every type of the union must appear (checked by the tests). */
export const arbMessageOfType: { [T in MessageType]: fc.Arbitrary<Message & { type: T }> } = {
  app: withOptional(
    record({
      type: fc.constant('app' as const),
      ...base,
      prevIndex: arbIndex,
      prevTerm: arbIndex,
      prevHash: arbHash,
      entries: fc.array(arbEntry, { maxLength: 8 }),
      commit: arbIndex
    }),
    'certificate',
    arbCertificate
  ),
  appResp: record({
    type: fc.constant('appResp' as const),
    ...base,
    index: arbIndex,
    reject: fc.boolean(),
    hintIndex: arbIndex,
    hintTerm: arbIndex
  }),
  vote: record({
    type: fc.constant('vote' as const),
    ...base,
    lastIndex: arbIndex,
    lastTerm: arbIndex,
    force: fc.boolean()
  }),
  preVote: record({
    type: fc.constant('preVote' as const),
    ...base,
    lastIndex: arbIndex,
    lastTerm: arbIndex,
    force: fc.boolean()
  }),
  voteResp: withOptional(
    record({ type: fc.constant('voteResp' as const), ...base, reject: fc.boolean() }),
    'signature',
    arbSignature
  ),
  preVoteResp: record({ type: fc.constant('preVoteResp' as const), ...base, reject: fc.boolean() }),
  heartbeat: withOptional(
    record({
      type: fc.constant('heartbeat' as const),
      ...base,
      commit: arbIndex,
      context: fc.option(arbContext, { nil: null })
    }),
    'certificate',
    arbCertificate
  ),
  heartbeatResp: record({
    type: fc.constant('heartbeatResp' as const),
    ...base,
    context: fc.option(arbContext, { nil: null })
  }),
  snap: withOptional(
    record({ type: fc.constant('snap' as const), ...base, snapshot: arbSnapshot }),
    'certificate',
    arbCertificate
  ),
  timeoutNow: withOptional(
    record({ type: fc.constant('timeoutNow' as const), ...base }),
    'certificate',
    arbCertificate
  ),
  readIndex: record({ type: fc.constant('readIndex' as const), ...base, context: arbContext }),
  readIndexResp: record({ type: fc.constant('readIndexResp' as const), ...base, index: arbIndex, context: arbContext }),
  transferLeader: record({ type: fc.constant('transferLeader' as const), ...base, target: arbNodeId })
}

export const arbMessage: fc.Arbitrary<Message> = fc.oneof(
  ...(Object.values(arbMessageOfType) as Array<fc.Arbitrary<Message>>)
)
