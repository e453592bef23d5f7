import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { BIP340, loadNativeBip340, nobleBip340, type Bip340, type Bip340Check } from '../../protocol/bip340.js'
import { fromHex } from '../../protocol/bytes.js'
import { bip340Backend, secretKeyFromSeed, verifyHash, verifyHashBatch } from '../../protocol/keys.js'
import { SignatureCache } from '../../board/signature-cache.js'

/**
 * Rule (docs/protocol.md §3): BIP340 verification gives the same answer whichever implementation
 * runs (the libsecp256k1 binding or the noble fallback), on BIP340's own test vectors and on
 * valid and tampered signatures; signing with the same key, message and auxiliary randomness gives
 * the same signature; a batch is valid exactly when each of its signatures is.
 */

interface Vector {
  index: number
  secretKey: string
  publicKey: string
  auxRand: string
  message: string
  signature: string
  valid: boolean
  comment: string
}

/** The vectors of BIP340's test-vectors.csv (those with 32-byte messages: all we sign). */
function vectors(): Vector[] {
  const text = readFileSync(fileURLToPath(new URL('vectors/bip340.csv', import.meta.url)), 'utf8')
  return text
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const f = line.split(',')
      return {
        index: Number(f[0]),
        secretKey: f[1],
        publicKey: f[2],
        auxRand: f[3],
        message: f[4],
        signature: f[5],
        valid: f[6] === 'TRUE',
        comment: f.slice(7).join(',')
      }
    })
}

const native = loadNativeBip340()
const backends: Bip340[] = [nobleBip340, ...(native === null ? [] : [native])]

/** Valid checks from seeded keys, and each tampered in one byte of its signature, hash or key. */
function checks(n: number): { valid: Bip340Check[]; tampered: Bip340Check[] } {
  const valid: Bip340Check[] = []
  const tampered: Bip340Check[] = []
  for (let i = 0; i < n; i++) {
    const secret = secretKeyFromSeed(new TextEncoder().encode(`bip340 test ${i}`))
    const key = nobleBip340.publicKey(secret)
    const hash = secretKeyFromSeed(new TextEncoder().encode(`bip340 message ${i}`))
    const signature = nobleBip340.sign(hash, secret, new Uint8Array(32).fill(i))
    valid.push({ signature, hash, key })
    const flip = (b: Uint8Array, at: number): Uint8Array => {
      const c = new Uint8Array(b)
      c[at] ^= 1 << (i % 8)
      return c
    }
    tampered.push({ signature: flip(signature, i % 64), hash, key })
    tampered.push({ signature, hash: flip(hash, i % 32), key })
    tampered.push({ signature, hash, key: flip(key, i % 32) })
  }
  return { valid, tampered }
}

describe('BIP340 implementations (libsecp256k1 binding and noble)', () => {
  it('the native binding loads on this machine, and is what keys.ts uses', function () {
    // CI and developer machines build it at install (node-gyp); a machine without a compiler runs on noble.
    if (process.env.POOLBOARD_EXPECT_NOBLE === '1') this.skip()
    assert.notEqual(native, null, "bcrypto's libsecp256k1 binding did not load: is it built (npm ci runs node-gyp)?")
    assert.equal(BIP340.name, 'libsecp256k1')
    assert.equal(bip340Backend(), 'libsecp256k1')
  })

  for (const b of backends) {
    describe(b.name, () => {
      for (const v of vectors()) {
        it(`BIP340 vector ${v.index}: ${v.valid ? 'valid' : `invalid (${v.comment})`}`, () => {
          const sig = fromHex(v.signature.toLowerCase())
          const msg = fromHex(v.message.toLowerCase())
          const key = fromHex(v.publicKey.toLowerCase())
          assert.equal(b.verify(sig, msg, key), v.valid)
          assert.equal(b.verifyBatch([{ signature: sig, hash: msg, key }]), v.valid)
          if (v.secretKey !== '') {
            const secret = fromHex(v.secretKey.toLowerCase())
            assert.deepEqual(b.publicKey(secret), key)
            assert.deepEqual(b.sign(msg, secret, fromHex(v.auxRand.toLowerCase())), sig)
          }
        })
      }
    })
  }

  it('both give the same answers on valid and tampered signatures, one by one and in batches', () => {
    const { valid, tampered } = checks(24)
    for (const b of backends) {
      for (const c of valid) assert.equal(b.verify(c.signature, c.hash, c.key), true, b.name)
      for (const c of tampered) assert.equal(b.verify(c.signature, c.hash, c.key), false, b.name)
      assert.equal(b.verifyBatch(valid), true, `${b.name}: a batch of valid signatures`)
      for (let i = 0; i < tampered.length; i += 7) {
        const mixed = [...valid.slice(0, 5), tampered[i], ...valid.slice(5, 9)]
        assert.equal(b.verifyBatch(mixed), false, `${b.name}: one tampered signature (${i}) in a batch`)
      }
      assert.equal(b.verifyBatch([]), true)
    }
  })

  it('both sign alike: the same key, hash and aux give the same signature', () => {
    if (native === null) return
    for (let i = 0; i < 16; i++) {
      const secret = secretKeyFromSeed(new TextEncoder().encode(`sign ${i}`))
      const hash = secretKeyFromSeed(new TextEncoder().encode(`hash ${i}`))
      const aux = new Uint8Array(32).fill(i * 7)
      assert.deepEqual(native.sign(hash, secret, aux), nobleBip340.sign(hash, secret, aux))
      assert.deepEqual(native.publicKey(secret), nobleBip340.publicKey(secret))
    }
  })

  it('bad input gives false, never an exception (wrong lengths, key not on the curve)', () => {
    const { valid } = checks(1)
    const c = valid[0]
    assert.equal(verifyHash(c.signature.subarray(0, 63), c.hash, c.key), false)
    assert.equal(verifyHash(c.signature, c.hash.subarray(1), c.key), false)
    assert.equal(verifyHashBatch([c, { ...c, key: new Uint8Array(31) }]), false)
    const offCurve = fromHex('eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34')
    for (const b of backends) {
      assert.equal(b.verify(c.signature, c.hash, offCurve), false)
      assert.equal(b.verifyBatch([c, { ...c, key: offCurve }]), false)
    }
  })

  it("the signature cache's batch preparation remembers exactly the valid signatures", () => {
    const { valid, tampered } = checks(6)
    const cache = new SignatureCache()
    cache.prepare([...valid, tampered[0], tampered[4]])
    for (const c of valid) assert.equal(cache.knows(c.signature, c.hash, c.key), true)
    for (const c of [tampered[0], tampered[4]]) assert.equal(cache.knows(c.signature, c.hash, c.key), false)
    assert.equal(cache.verify(tampered[0].signature, tampered[0].hash, tampered[0].key), false)
    const hits = cache.stats().hits
    for (const c of valid) assert.equal(cache.verify(c.signature, c.hash, c.key), true)
    assert.equal(cache.stats().hits, hits + valid.length)
  })

  it("without the binding (bcrypto's NODE_BACKEND=js) a node runs on noble, with the same answers", () => {
    const url = new URL('../../protocol/keys.ts', import.meta.url).href
    const { valid, tampered } = checks(2)
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
    const script = `
      const k = await import(${JSON.stringify(url)})
      const h = (s) => Uint8Array.from(Buffer.from(s, 'hex'))
      const cs = ${JSON.stringify([...valid, ...tampered].map((c) => [hex(c.signature), hex(c.hash), hex(c.key)]))}
      console.log(JSON.stringify({ backend: k.bip340Backend(), answers: cs.map(([s, m, p]) => k.verifyHash(h(s), h(m), h(p))) }))`
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, NODE_BACKEND: 'js' },
      encoding: 'utf8'
    })
    const { backend, answers } = JSON.parse(out) as { backend: string; answers: boolean[] }
    assert.equal(backend, 'noble')
    assert.deepEqual(answers, [...valid.map(() => true), ...tampered.map(() => false)])
  })
})
