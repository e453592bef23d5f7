import assert from 'node:assert/strict'
import {
  MAX_MEMBERS,
  MAX_OBJECT_BYTES,
  buildPartitionStatement,
  decodeEvidence,
  decodeGenesis,
  decodeSignedState,
  decodeStatement,
  encodeEvidence,
  encodeGenesis,
  encodeSignedState,
  encodeStatement,
  initialState,
  makeEvidence,
  makeGenesis,
  publicKeyOf,
  secretKeyFromSeed,
  signHash,
  stateHash,
  statementId,
  verifyEvidence,
  verifySignedState
} from '../../protocol/index.js'

/**
 * Rule (docs/protocol.md §7): every object of a pool of `MAX_MEMBERS` members fits `MAX_OBJECT_BYTES`,
 * the largest being equivocation evidence over two statements whose actives are every member.
 */
describe('limits sized for 1,000 members', function () {
  this.timeout(60_000)
  const secrets = Array.from({ length: MAX_MEMBERS }, (_, i) =>
    secretKeyFromSeed(new TextEncoder().encode(`limits ${i}`))
  )
  const keys = secrets.map(publicKeyOf)
  // A peer id as long as libp2p's Ed25519 ones (52 characters).
  const genesis = makeGenesis({
    members: keys.map((key, i) => ({ key, peerId: `12D3KooW${String(i).padStart(44, 'x')}`, balanceSats: 1_000n })),
    funding: { txid: new Uint8Array(32).fill(9), vout: 0 },
    kickoutDelayBlocks: 144,
    creationHeight: 0
  })
  const state0 = initialState(genesis)
  const secretOf = new Map(keys.map((k, i) => [Buffer.from(k).toString('hex'), secrets[i]!]))

  it(`a genesis and a signed state of ${MAX_MEMBERS} members encode within the limit and round-trip`, () => {
    const g = encodeGenesis(genesis)
    assert.ok(g.length <= MAX_OBJECT_BYTES, `genesis: ${g.length} bytes`)
    assert.deepEqual(encodeGenesis(decodeGenesis(g)), g)
    // Every member signs the same state hash: compute it once (signState would recompute it per member).
    const hash = stateHash(state0)
    const signed = {
      state: state0,
      signatures: state0.pool.members.map((k) => signHash(hash, secretOf.get(Buffer.from(k).toString('hex'))!))
    }
    const bytes = encodeSignedState(signed)
    assert.ok(bytes.length <= MAX_OBJECT_BYTES, `signed state: ${bytes.length} bytes`)
    assert.equal(verifySignedState(decodeSignedState(bytes)).ok, true)
  })

  it(`evidence over two conflicting ${MAX_MEMBERS}-active statements, each complete, fits and verifies`, () => {
    const members = state0.pool.members
    const same = members.map(() => 1_000n)
    const shifted = members.map((_, i) => (i === 0 ? 0n : i === 1 ? 2_000n : 1_000n))
    const sign = (s: ReturnType<typeof buildPartitionStatement>): typeof s => {
      const id = statementId(s)
      return {
        ...s,
        signatures: members.map((k, index) => ({
          index,
          signature: signHash(id, secretOf.get(Buffer.from(k).toString('hex'))!)
        }))
      }
    }
    const a = sign(buildPartitionStatement(state0, members, same, 0))
    const b = sign(buildPartitionStatement(state0, members, shifted, 0))
    for (const s of [a, b]) {
      const bytes = encodeStatement(s)
      assert.ok(bytes.length <= MAX_OBJECT_BYTES, `statement: ${bytes.length} bytes`)
      assert.deepEqual(encodeStatement(decodeStatement(bytes)), bytes)
    }
    const ev = makeEvidence(a, b, members[5]!)
    const bytes = encodeEvidence(ev)
    assert.ok(bytes.length <= MAX_OBJECT_BYTES, `evidence: ${bytes.length} bytes of ${MAX_OBJECT_BYTES}`)
    assert.equal(verifyEvidence(decodeEvidence(bytes), state0.pool.poolId).ok, true)
  })
})
