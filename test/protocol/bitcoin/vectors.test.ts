/**
 * The published vectors (test/vectors/, data from github.com/bitcoin/bips): BIP341 wallet vectors
 * for the Taproot tweak, addresses and the checker's signature hash; BIP340 for signatures; BIP327
 * for key and nonce aggregation (the production WASM path) and for signing, verification and
 * aggregation (through @scure/btc-signer's musig2, the reference the production path is compared
 * against in musig.test.ts).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { schnorr } from '@noble/curves/secp256k1.js'
import * as scure from '@scure/btc-signer/musig2.js'
import { compareBytes, fromHex, toHex, verifyHash, signHash } from '../../../protocol/index.js'
import {
  aggregateKeys,
  aggregateNonces,
  parseTransaction,
  taprootAddress,
  taprootOutputKey,
  taprootSighash,
  tapTweak,
  tweakedSecretKey
} from '../../../protocol/bitcoin/index.js'

const dir = new URL('../../vectors/', import.meta.url)
// biome-ignore lint/suspicious/noExplicitAny: JSON test vectors; the assertions check their shape
const json = (p: string): any => JSON.parse(readFileSync(new URL(p, dir), 'utf8'))
const h = (s: string): Uint8Array => fromHex(s)

describe('BIP341 wallet vectors', () => {
  const v = json('bip341/wallet-test-vectors.json')

  it('tweak, output key and bech32m address of every scriptPubKey case', () => {
    for (const c of v.scriptPubKey) {
      const internal = h(c.given.internalPubkey)
      const root = c.intermediary.merkleRoot === null ? undefined : h(c.intermediary.merkleRoot)
      assert.equal(toHex(tapTweak(internal, root)), c.intermediary.tweak)
      const { outputKey } = taprootOutputKey(internal, root)
      assert.equal(toHex(outputKey), c.intermediary.tweakedPubkey)
      assert.equal(taprootAddress('mainnet', outputKey), c.expected.bip350Address)
    }
  })

  it('the checker computes every key-path signature hash, and the expected witnesses verify under it', () => {
    let n = 0
    for (const k of v.keyPathSpending) {
      const tx = parseTransaction(h(k.given.rawUnsignedTx))
      // biome-ignore lint/suspicious/noExplicitAny: an entry of the JSON test vectors
      const spent = k.given.utxosSpent.map((u: any) => ({
        amountSats: BigInt(u.amountSats),
        scriptPubKey: h(u.scriptPubKey)
      }))
      for (const s of k.inputSpending) {
        const idx = s.given.txinIndex
        const msg = taprootSighash(tx, idx, spent, s.given.hashType)
        assert.equal(toHex(msg), s.intermediary.sigHash, `input ${idx}`)
        const root = s.given.merkleRoot === null ? undefined : h(s.given.merkleRoot)
        assert.equal(toHex(tweakedSecretKey(h(s.given.internalPrivkey), root)), s.intermediary.tweakedPrivkey)
        const sig = h(s.expected.witness[0])
        const key = spent[idx].scriptPubKey.subarray(2)
        assert.ok(schnorr.verify(sig.subarray(0, 64), msg, key), `witness of input ${idx}`)
        if (sig.length === 65) assert.equal(sig[64], s.given.hashType)
        n++
      }
    }
    assert.equal(n, 7)
  })
})

describe('BIP340 vectors', () => {
  it('verifyHash agrees with every verification result; signHash reproduces every signature', () => {
    const rows = readFileSync(new URL('bip340/test-vectors.csv', dir), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','))
    let signed = 0
    for (const [index, sk, pk, aux, msg, sig, result] of rows) {
      if (msg!.length !== 64) continue // the pool signs 32-byte hashes only
      assert.equal(verifyHash(h(sig!), h(msg!), h(pk!)), result === 'TRUE', `vector ${index}`)
      if (sk !== '') {
        assert.equal(toHex(signHash(h(msg!), h(sk!), h(aux!))), sig!.toLowerCase(), `vector ${index}`)
        signed++
      }
    }
    assert.ok(signed >= 4)
  })
})

describe('BIP327 vectors', () => {
  it('key aggregation (production path): every valid case, and every invalid key refused', () => {
    const v = json('bip327/key_agg_vectors.json')
    for (const c of v.valid_test_cases) {
      assert.equal(toHex(aggregateKeys(c.key_indices.map((i: number) => h(v.pubkeys[i])))), c.expected.toLowerCase())
    }
    for (const c of v.error_test_cases) {
      if (c.tweak_indices.length > 0) continue // tweak errors: the pool's only tweak is BIP86's
      assert.throws(() => aggregateKeys(c.key_indices.map((i: number) => h(v.pubkeys[i]))), RangeError, c.comment)
    }
  })

  it("key sort: for even-y keys, the pool's member order is KeySort", () => {
    const v = json('bip327/key_sort_vectors.json')
    const xs = v.pubkeys.map((k: string) => h(k).subarray(1))
    const ours = [...xs].sort(compareBytes).map((x: Uint8Array) => toHex(x))
    const theirs = scure.sortKeys(xs.map((x: Uint8Array) => Uint8Array.of(2, ...x))).map((k) => toHex(k.subarray(1)))
    assert.deepEqual(ours, theirs)
  })

  it('nonce aggregation (production path): every valid case, and every invalid nonce refused', () => {
    const v = json('bip327/nonce_agg_vectors.json')
    for (const c of v.valid_test_cases) {
      assert.equal(
        toHex(aggregateNonces(c.pnonce_indices.map((i: number) => h(v.pnonces[i])))),
        c.expected.toLowerCase()
      )
    }
    for (const c of v.error_test_cases) {
      assert.throws(() => aggregateNonces(c.pnonce_indices.map((i: number) => h(v.pnonces[i]))), RangeError, c.comment)
    }
  })

  it('signing, partial-signature verification (reference implementation)', () => {
    const v = json('bip327/sign_verify_vectors.json')
    const pks = v.pubkeys.map(h)
    const pn = v.pnonces.map(h)
    for (const c of v.valid_test_cases) {
      const keys = c.key_indices.map((i: number) => pks[i])
      const msg = h(v.msgs[c.msg_index])
      const session = new scure.Session(h(v.aggnonces[c.aggnonce_index]), keys, msg)
      const sig = session.sign(h(v.secnonces[0]), h(v.sk))
      assert.equal(toHex(sig), c.expected.toLowerCase())
      assert.ok(
        session.partialSigVerify(
          sig,
          c.nonce_indices.map((i: number) => pn[i]),
          c.signer_index
        )
      )
    }
    for (const c of v.verify_fail_test_cases) {
      const keys = c.key_indices.map((i: number) => pks[i])
      const nonces = c.nonce_indices.map((i: number) => pn[i])
      const msg = h(v.msgs[c.msg_index])
      let ok: boolean
      try {
        ok = new scure.Session(scure.nonceAggregate(nonces), keys, msg).partialSigVerify(
          h(c.sig),
          nonces,
          c.signer_index
        )
      } catch {
        ok = false
      }
      assert.equal(ok, false, c.comment)
    }
  })

  it('signature aggregation with tweaks (reference implementation), verified by BIP340', () => {
    const v = json('bip327/sig_agg_vectors.json')
    for (const c of v.valid_test_cases) {
      const keys = c.key_indices.map((i: number) => h(v.pubkeys[i]))
      const tweaks = c.tweak_indices.map((i: number) => h(v.tweaks[i]))
      const session = new scure.Session(h(c.aggnonce), keys, h(v.msg), tweaks, c.is_xonly)
      const sig = session.partialSigAgg(c.psig_indices.map((i: number) => h(v.psigs[i])))
      assert.equal(toHex(sig), c.expected.toLowerCase())
      const q = scure.keyAggExport(scure.keyAggregate(keys, tweaks, c.is_xonly))
      assert.ok(schnorr.verify(sig, h(v.msg), q))
    }
  })
})
