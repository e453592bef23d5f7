/**
 * Pool entries: each kind's encoder and decoder, and undecodable entries reported, never thrown.
 */
import assert from 'node:assert/strict'
import {
  BOARD_ENTRY_VERSION,
  ENTRY_KIND,
  MAX_POOL_ENTRY_PAYLOAD_BYTES,
  decodeBoardEntry,
  encodeBlocksEntry,
  encodeEvidenceEntry,
  encodeGenesisEntry,
  encodeKickoutEntry,
  encodeStateEntry,
  encodeStatementEntry
} from '../../board/entries.js'
import { makeEntry, ZERO_HASH } from '../../board/raft/index.js'
import { findEquivocations, initialState, type PoolRef } from '../../protocol/index.js'
import { nextState, partition, signAllState, smallGenesis } from './helpers.js'

const entry = (data: Uint8Array) => makeEntry(ZERO_HASH, 1, 1, 'normal', data)

describe('pool entries', () => {
  const g = smallGenesis(3)
  const s0 = initialState(g)

  it('round-trip through their encoders and decodeBoardEntry', () => {
    const signed0 = signAllState(s0)
    assert.deepStrictEqual(decodeBoardEntry(entry(encodeGenesisEntry(g, signed0))), {
      kind: 'genesis',
      genesis: g,
      signed: signed0
    })
    const signed1 = signAllState(nextState(s0, 0, 1, 5n))
    assert.deepStrictEqual(decodeBoardEntry(entry(encodeStateEntry(signed1))), { kind: 'state', signed: signed1 })
    const stmt = partition(s0, [0, 1], [150_000n, 150_000n])
    assert.deepStrictEqual(decodeBoardEntry(entry(encodeStatementEntry(stmt))), { kind: 'statement', statement: stmt })
    const B = s0.pool.members[1]
    const [ev] = findEquivocations(partition(s0, [1], [200_000n], [B]), partition(s0, [1, 2], [1n, 499_999n], [B]))
    assert.deepStrictEqual(decodeBoardEntry(entry(encodeEvidenceEntry(ev))), { kind: 'evidence', evidence: ev })
    assert.deepStrictEqual(decodeBoardEntry(entry(encodeBlocksEntry(10_000))), { kind: 'blocks', count: 10_000 })
    const pool: PoolRef = {
      kind: 'continuation',
      parent: { kind: 'partition', statementId: new Uint8Array(32).fill(5) },
      parentStateNumber: 3,
      evictedIndex: 1
    }
    const request = { pool, stateNumber: 7, member: B }
    assert.deepStrictEqual(decodeBoardEntry(entry(encodeKickoutEntry(request))), { kind: 'kickout', request })
  })

  it('have the documented layout: version, kind, protocol encoding', () => {
    assert.deepStrictEqual([...encodeBlocksEntry(258)], [BOARD_ENTRY_VERSION, ENTRY_KIND.blocks, 2, 1, 0, 0])
    const k = encodeKickoutEntry({ pool: { kind: 'root' }, stateNumber: 1, member: new Uint8Array(32).fill(9) })
    assert.deepStrictEqual([...k.subarray(0, 7)], [1, ENTRY_KIND.kickout, 0, 1, 0, 0, 0])
    assert.equal(k.length, 2 + 1 + 4 + 32)
  })

  it('encoders refuse what no node would accept', () => {
    assert.throws(() => encodeBlocksEntry(0), /blocks.count: 0 is not within 1..10000/)
    assert.throws(() => encodeBlocksEntry(10_001), /blocks.count: 10001 is not within 1..10000/)
    assert.throws(
      () => encodeKickoutEntry({ pool: { kind: 'root' }, stateNumber: -1, member: new Uint8Array(32) }),
      /kickout.stateNumber: not a u32/
    )
    assert.throws(
      () => encodeKickoutEntry({ pool: { kind: 'root' }, stateNumber: 0, member: new Uint8Array(31) }),
      /kickout.member: expected 32 bytes/
    )
  })

  it('an undecodable entry is reported with the field that was wrong', () => {
    const signed = encodeStateEntry(signAllState(s0))
    assert.deepStrictEqual(decodeBoardEntry(entry(Uint8Array.of(...signed, 0))), {
      kind: 'unknown',
      code: ENTRY_KIND.state,
      reason: 'state entry: signed state: 1 trailing bytes after offset ' + String(signed.length - 2)
    })
    const k = encodeKickoutEntry({ pool: { kind: 'root' }, stateNumber: 0, member: new Uint8Array(32) })
    const bad = k.slice()
    bad[2] = 9
    assert.match(
      (decodeBoardEntry(entry(bad)) as { reason: string }).reason,
      /^kickout entry: kickout: pool: kind: unknown pool reference kind 9/
    )
    const big = new Uint8Array(2 + MAX_POOL_ENTRY_PAYLOAD_BYTES + 1)
    big[0] = BOARD_ENTRY_VERSION
    big[1] = ENTRY_KIND.statement
    assert.match(
      (decodeBoardEntry(entry(big)) as { reason: string }).reason,
      /statement entry: payload of 524289 bytes exceeds 524288/
    )
    assert.deepStrictEqual(decodeBoardEntry(entry(Uint8Array.of(1, 0x42))), {
      kind: 'unknown',
      code: 0x42,
      reason: 'unknown entry kind 66'
    })
  })
})
