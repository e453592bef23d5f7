/**
 * MusigRound: a round signs what BIP340 verifies under the BIP86-tweaked aggregate (the key
 * @scure/btc-signer's BIP327 KeyAgg gives); every peer input is validated and a bad one is
 * refused naming the member who sent it (docs/protocol.md section 9.7).
 */
import assert from 'node:assert/strict'
import { schnorr } from '@noble/curves/secp256k1.js'
import * as scure from '@scure/btc-signer/musig2.js'
import { fromHex, sha256, toHex } from '../../../protocol/index.js'
import { MusigError, MusigRound, signerGroup, tapTweak, type SigningJob } from '../../../protocol/bitcoin/index.js'
import { chainMembers } from './helpers.js'

const rnd = (s: string): Uint8Array => sha256(new TextEncoder().encode(s))

function jobsFor(keys: Uint8Array[], count: number): SigningJob[] {
  return Array.from({ length: count }, (_, i) => ({ label: `job ${i}`, message: rnd(`message ${i}`), signers: keys }))
}

function rounds(n: number, jobs?: SigningJob[], tag = 'random') {
  const ms = chainMembers(n, 'musig')
  const keys = ms.map((m) => m.publicKey)
  const js = jobs ?? jobsFor(keys, 3)
  return {
    ms,
    keys,
    jobs: js,
    rs: ms.map((m, i) => new MusigRound({ secretKey: m.secretKey, jobs: js, random: rnd(`${tag} ${i}`) }))
  }
}

function exchangeNonces(rs: MusigRound[], keys: Uint8Array[]): void {
  rs.forEach((a, i) => rs.forEach((b, j) => i !== j && b.addNonces(keys[i]!, a.nonceMessage())))
}

function throwsMusig(fn: () => unknown, code: string, member: Uint8Array | undefined, text: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MusigError, String(e))
    assert.equal(e.code, code)
    if (member !== undefined) assert.equal(toHex(e.member!), toHex(member))
    assert.match(e.message, text)
    return true
  })
}

describe('MuSig2 rounds (protocol/bitcoin/musig.ts)', () => {
  it('the aggregate output key equals BIP327 KeyAgg (reference) with the BIP86 tweak', () => {
    for (const n of [2, 5, 16]) {
      const keys = chainMembers(n, 'agg').map((m) => m.publicKey)
      const plain = keys.map((k) => Uint8Array.of(2, ...k))
      const internal = scure.keyAggExport(scure.keyAggregate(plain))
      const g = signerGroup(keys)
      assert.equal(toHex(g.internalKey), toHex(internal))
      const q = scure.keyAggExport(scure.keyAggregate(plain, [tapTweak(internal)], [true]))
      assert.equal(toHex(g.outputKey), toHex(q))
    }
  })

  it('a round among 2, 4 and 16 members gives signatures BIP340 verifies under the output key, and partial signatures the reference verifies', () => {
    for (const n of [2, 4, 16]) {
      const { keys, jobs, rs } = rounds(n)
      exchangeNonces(rs, keys)
      assert.ok(rs.every((r) => r.noncesComplete()))
      const partials = rs.map((r) => r.partialMessage())
      // The reference implementation accepts the WASM partial signatures (job 0).
      const pub = rs.map((r) => r.nonceMessage().subarray(0, 66))
      const session = new scure.Session(
        scure.nonceAggregate(pub),
        keys.map((k) => Uint8Array.of(2, ...k)),
        jobs[0]!.message,
        [tapTweak(signerGroup(keys).internalKey)],
        [true]
      )
      partials.forEach((p, i) => assert.ok(session.partialSigVerify(p.subarray(32, 64), pub, i), `member ${i}`))
      partials.forEach((p, i) => i !== 0 && rs[0]!.addPartials(keys[i]!, p))
      const sigs = rs[0]!.signatures()
      sigs.forEach((s, i) => assert.ok(schnorr.verify(s, jobs[i]!.message, signerGroup(keys).outputKey)))
    }
  })

  it('jobs with different signer sets: each member sends values only for its jobs', () => {
    const ms = chainMembers(3, 'sets')
    const keys = ms.map((m) => m.publicKey)
    const jobs: SigningJob[] = [
      { label: 'all', message: rnd('a'), signers: keys },
      { label: 'first two', message: rnd('b'), signers: [keys[0]!, keys[1]!] }
    ]
    const rs = ms.map((m, i) => new MusigRound({ secretKey: m.secretKey, jobs, random: rnd(`r${i}`) }))
    assert.equal(rs[0]!.nonceMessage().length, 132)
    assert.equal(rs[2]!.nonceMessage().length, 66)
    exchangeNonces(rs, keys)
    const ps = rs.map((r) => r.partialMessage())
    assert.equal(ps[2]!.length, 32 + 32)
    ps.forEach((p, i) => i !== 0 && rs[0]!.addPartials(keys[i]!, p))
    const sigs = rs[0]!.signatures()
    assert.ok(schnorr.verify(sigs[1]!, rnd('b'), signerGroup([keys[0]!, keys[1]!]).outputKey))
  })

  it('refuses a nonce message of the wrong size, from a non-signer, twice, or not made of compressed points, naming the member', () => {
    const { keys, rs } = rounds(3)
    const good = rs[1]!.nonceMessage()
    throwsMusig(
      () => rs[0]!.addNonces(keys[1]!, good.subarray(0, 100)),
      'bad-size',
      keys[1],
      /expected 3 public nonces \(198 bytes\), got 100/
    )
    const stranger = chainMembers(1, 'stranger')[0]!.publicKey
    throwsMusig(() => rs[0]!.addNonces(stranger, good), 'not-a-signer', stranger, /signs none/)
    const bad = new Uint8Array(good)
    bad[66] = 0x04
    throwsMusig(() => rs[0]!.addNonces(keys[1]!, bad), 'bad-nonce', keys[1], /job 1 .* not two compressed points/)
    rs[0]!.addNonces(keys[1]!, good)
    throwsMusig(() => rs[0]!.addNonces(keys[1]!, good), 'duplicate', keys[1], /already sent/)
  })

  it('a nonce that is not on the curve is blamed on its sender when the nonces are aggregated', () => {
    const { keys, rs } = rounds(3)
    const bad = new Uint8Array(rs[2]!.nonceMessage())
    // x = 5 is not the x coordinate of a point of secp256k1 (BIP327 nonce_agg vector).
    bad.set(fromHex('020000000000000000000000000000000000000000000000000000000000000005'), 0)
    rs[0]!.addNonces(keys[1]!, rs[1]!.nonceMessage())
    rs[0]!.addNonces(keys[2]!, bad)
    throwsMusig(() => rs[0]!.partialMessage(), 'bad-nonce', keys[2], /job 0 .* not on the curve/)
  })

  it('partial signatures before the nonces, of the wrong size, or out of range are refused; a wrong one is named at aggregation', () => {
    const { keys, rs } = rounds(4)
    throwsMusig(
      () => rs[0]!.addPartials(keys[1]!, new Uint8Array(128)),
      'wrong-phase',
      keys[1],
      /before this member has every nonce/
    )
    throwsMusig(() => rs[0]!.partialMessage(), 'wrong-phase', undefined, /nonces missing from/)
    exchangeNonces(rs, keys)
    const ps = rs.map((r) => r.partialMessage())
    throwsMusig(
      () => rs[0]!.addPartials(keys[1]!, ps[1]!.subarray(0, 96)),
      'bad-size',
      keys[1],
      /expected 3 partial signatures \(128 bytes\), got 96/
    )
    const high = new Uint8Array(ps[1]!)
    high.fill(0xff, 64, 96)
    throwsMusig(
      () => rs[0]!.addPartials(keys[1]!, high),
      'bad-partial-signature',
      keys[1],
      /job 1 .* not below the curve order/
    )
    rs[0]!.addPartials(keys[1]!, ps[1]!)
    const wrong = new Uint8Array(ps[3]!)
    wrong[32 + 64 + 31] ^= 1
    rs[0]!.addPartials(keys[2]!, ps[2]!)
    throwsMusig(() => rs[0]!.signatures(), 'wrong-phase', undefined, /missing from/)
    rs[0]!.addPartials(keys[3]!, wrong)
    throwsMusig(() => rs[0]!.signatures(), 'bad-partial-signature', keys[3], /job 2 \(job 2\) does not verify/)
  })

  it('a member who got other nonces than the aggregator (a participant equivocated its nonces) is reported as a mismatch, not as a bad signer', () => {
    const { keys, rs } = rounds(3)
    const other = rounds(3, undefined, 'other').rs // the same members and jobs, other nonces
    // Member 2 sends its genuine nonces to member 0 and other ones to member 1.
    rs[0]!.addNonces(keys[1]!, rs[1]!.nonceMessage())
    rs[0]!.addNonces(keys[2]!, rs[2]!.nonceMessage())
    rs[1]!.addNonces(keys[0]!, rs[0]!.nonceMessage())
    rs[1]!.addNonces(keys[2]!, other[2]!.nonceMessage())
    rs[0]!.partialMessage()
    throwsMusig(
      () => rs[0]!.addPartials(keys[1]!, rs[1]!.partialMessage()),
      'nonce-mismatch',
      keys[1],
      /signed over other nonces than this member received/
    )
  })

  it("with a coordinator's aggregate nonces, the others sign without aggregating; a wrong aggregate only makes the signature fail", () => {
    const { keys, jobs, rs } = rounds(4, undefined, 'coordinated')
    // Only the coordinator (member 0) collects every nonce.
    rs.forEach((a, i) => i !== 0 && rs[0]!.addNonces(keys[i]!, a.nonceMessage()))
    const aggs = rs[0]!.aggregateNonceMessage()
    assert.equal(aggs.length, 3 * 66)
    throwsMusig(
      () => rs[1]!.partialMessage(aggs.subarray(0, 66)),
      'bad-size',
      undefined,
      /aggregate nonces: expected 198 bytes/
    )
    const ps = rs.map((r, i) => (i === 0 ? r.partialMessage() : r.partialMessage(aggs)))
    ps.forEach((p, i) => i !== 0 && rs[0]!.addPartials(keys[i]!, p))
    rs[0]!
      .signatures()
      .forEach((sig, i) => assert.ok(schnorr.verify(sig, jobs[i]!.message, signerGroup(keys).outputKey)))
    // A coordinator that lies about the aggregates: members signing over them disagree with an honest aggregation.
    const again = rounds(3, undefined, 'lying')
    again.rs.forEach((a, i) => i !== 0 && again.rs[0]!.addNonces(again.keys[i]!, a.nonceMessage()))
    const honest = again.rs[0]!.aggregateNonceMessage()
    const lie = new Uint8Array(honest)
    lie.set(honest.subarray(66, 132), 0)
    again.rs[0]!.partialMessage()
    throwsMusig(
      () => again.rs[0]!.addPartials(again.keys[1]!, again.rs[1]!.partialMessage(lie)),
      'nonce-mismatch',
      again.keys[1],
      /signed over other/
    )
  })

  it('a secret nonce is used once: the partial signatures are computed once and the round cannot sign again', () => {
    const { keys, rs } = rounds(2)
    exchangeNonces(rs, keys)
    const a = rs[0]!.partialMessage()
    assert.equal(toHex(rs[0]!.partialMessage()), toHex(a))
    throwsMusig(
      () => rs[0]!.addNonces(keys[1]!, rs[1]!.nonceMessage()),
      'wrong-phase',
      keys[1],
      /after that round closed/
    )
  })

  it('two rounds with the same randomness on different messages use different nonces', () => {
    const ms = chainMembers(2, 'reuse')
    const keys = ms.map((m) => m.publicKey)
    const a = new MusigRound({
      secretKey: ms[0]!.secretKey,
      jobs: [{ label: 'a', message: rnd('x'), signers: keys }],
      random: rnd('same')
    })
    const b = new MusigRound({
      secretKey: ms[0]!.secretKey,
      jobs: [{ label: 'b', message: rnd('y'), signers: keys }],
      random: rnd('same')
    })
    assert.notEqual(toHex(a.nonceMessage()), toHex(b.nonceMessage()))
  })
})
