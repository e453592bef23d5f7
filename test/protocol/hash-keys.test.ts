import assert from 'node:assert/strict'
import fc from 'fast-check'
import { schnorr } from '@noble/curves/secp256k1.js'
import { fromHex, toHex } from '../../protocol/bytes.js'
import { TAGS, sha256, sha256d, taggedHash, type Tag } from '../../protocol/hash.js'
import {
  isValidPublicKey,
  isValidSecretKey,
  keyPairFromSecret,
  publicKeyOf,
  secretKeyFromSeed,
  signHash,
  verifyHash
} from '../../protocol/keys.js'
import { generateKeyPair } from '../../protocol/keygen.js'
import { MEMBERS } from './fixtures.js'

const ALL_TAGS = Object.values(TAGS) as Tag[]

describe('protocol/hash', () => {
  it('sha256 and sha256d match known vectors', () => {
    assert.equal(toHex(sha256(new Uint8Array())), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    assert.equal(toHex(sha256d(new Uint8Array())), '5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456')
  })

  it('tagged hash is sha256(sha256(tag) || sha256(tag) || msg), as in BIP340', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALL_TAGS), fc.uint8Array({ maxLength: 200 }), fc.nat(200), (tag, msg, cut) => {
        const th = sha256(new TextEncoder().encode(tag))
        const manual = sha256(new Uint8Array([...th, ...th, ...msg]))
        const c = Math.min(cut, msg.length)
        assert.deepStrictEqual(taggedHash(tag, msg.subarray(0, c), msg.subarray(c)), manual)
        assert.deepStrictEqual(taggedHash(tag, msg), new Uint8Array(schnorr.utils.taggedHash(tag, msg)))
      })
    )
  })

  it("has one distinct poolboard/ tag per object type (plus BIP341's own Tap* tags), and refuses unknown tags", () => {
    assert.equal(new Set(ALL_TAGS).size, ALL_TAGS.length)
    for (const t of ALL_TAGS) assert.match(t, /^(poolboard\/[a-z-]+|TapTweak|TapSighash)$/)
    assert.throws(() => taggedHash('poolboard/unknown' as Tag, new Uint8Array()), /unknown tag/)
  })
})

describe('protocol/keys', () => {
  it('signs like BIP340 test vector 0', () => {
    const sk = fromHex('0000000000000000000000000000000000000000000000000000000000000003')
    assert.equal(
      toHex(publicKeyOf(sk)).toUpperCase(),
      'F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9'
    )
    const sig = signHash(new Uint8Array(32), sk, new Uint8Array(32))
    assert.equal(
      toHex(sig).toUpperCase(),
      'E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0'
    )
    assert.ok(verifyHash(sig, new Uint8Array(32), publicKeyOf(sk)))
  })

  it('derives valid, distinct keys from seeds; generates random keys', () => {
    const seen = new Set(MEMBERS.map((m) => toHex(m.publicKey)))
    assert.equal(seen.size, MEMBERS.length)
    for (const m of MEMBERS) {
      assert.ok(isValidSecretKey(m.secretKey))
      assert.ok(isValidPublicKey(m.publicKey))
    }
    assert.deepStrictEqual(secretKeyFromSeed(new Uint8Array([1, 2])), secretKeyFromSeed(new Uint8Array([1, 2])))
    const kp = generateKeyPair()
    assert.deepStrictEqual(keyPairFromSecret(kp.secretKey).publicKey, kp.publicKey)
    assert.ok(!isValidSecretKey(new Uint8Array(32)))
    assert.throws(() => publicKeyOf(new Uint8Array(32)), /secret key: invalid/)
    assert.throws(() => publicKeyOf(new Uint8Array(31)), /expected 32 bytes/)
  })

  it('a signature verifies only under its own tag, message and key', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ALL_TAGS),
        fc.constantFrom(...ALL_TAGS),
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 0, max: MEMBERS.length - 1 }),
        fc.integer({ min: 1, max: MEMBERS.length - 1 }),
        fc.nat(),
        (tag, otherTag, msg, who, shift, bit) => {
          const me = MEMBERS[who]!
          const other = MEMBERS[(who + shift) % MEMBERS.length]!
          const h = taggedHash(tag, msg)
          const sig = signHash(h, me.secretKey)
          assert.ok(verifyHash(sig, h, me.publicKey))
          assert.ok(!verifyHash(sig, h, other.publicKey), 'another member key')
          if (otherTag !== tag) assert.ok(!verifyHash(sig, taggedHash(otherTag, msg), me.publicKey), 'another tag')
          const flipped = new Uint8Array(sig)
          flipped[(bit >> 3) % 64]! ^= 1 << (bit & 7)
          assert.ok(!verifyHash(flipped, h, me.publicKey), 'flipped signature bit')
        }
      ),
      { numRuns: 40 }
    )
  })

  it('verification returns false on garbage and never throws', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 70 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 40 }),
        (sig, hash, key) => {
          assert.equal(verifyHash(sig, hash, key), false)
        }
      ),
      { numRuns: 200 }
    )
    const h = new Uint8Array(32)
    const sig = signHash(h, MEMBERS[0]!.secretKey)
    assert.equal(verifyHash(sig, h, new Uint8Array(32).fill(0xff)), false) // not an x coordinate
    assert.equal(verifyHash(new Uint8Array(64).fill(0xff), h, MEMBERS[0]!.publicKey), false)
    assert.equal(verifyHash(undefined as unknown as Uint8Array, h, MEMBERS[0]!.publicKey), false)
  })

  it('signatures are reproducible with zero aux data and differ with fresh aux data', () => {
    const h = taggedHash(TAGS.state, new Uint8Array([1]))
    const sk = MEMBERS[1]!.secretKey
    assert.deepStrictEqual(signHash(h, sk), signHash(h, sk))
    const other = signHash(h, sk, new Uint8Array(32).fill(7))
    assert.notDeepStrictEqual(other, signHash(h, sk))
    assert.ok(verifyHash(other, h, MEMBERS[1]!.publicKey))
  })
})
