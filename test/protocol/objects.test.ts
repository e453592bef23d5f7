/**
 * Every wire object: round trip, tamper detection, truncation, limits.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  DecodeError,
  MAX_OBJECT_BYTES,
  Writer,
  applyPayment,
  decodeEvidence,
  decodeGenesis,
  decodeMergeRequest,
  decodePartitionRequest,
  decodeSignatureShare,
  decodeSignedState,
  decodeState,
  decodeStatement,
  decodeTx,
  decodeUpdateRequest,
  encodeEvidence,
  encodeGenesis,
  encodeMergeRequest,
  encodePartitionRequest,
  encodeSignatureShare,
  encodeSignedState,
  encodeState,
  encodeStatement,
  encodeTx,
  encodeUpdateRequest,
  equalBytes,
  initialState,
  makeEvidence,
  makeMergeRequest,
  makePartitionRequest,
  makeSignatureShare,
  makeUpdateRequest,
  poolIdOf,
  signMergeRequest,
  signPartitionRequest,
  verifyMergeRequestSignature,
  signUpdateRequest,
  stateHash,
  statementId,
  toHex,
  txid,
  txidToDisplayHex,
  verifyEvidence,
  verifyPartitionRequestSignature,
  verifySignatureShare,
  verifySignedState,
  verifyStatement,
  verifyUpdateRequestSignature,
  type PoolState,
  type Tx
} from '../../protocol/index.js'
import {
  MEMBERS,
  arbBytes32,
  arbGenesis,
  arbPartitionChoice,
  arbPaymentChoice,
  fill32,
  memberByKey,
  partitionFrom,
  partitionOf,
  paymentFrom,
  signAllState,
  signStatementBy,
  testGenesis
} from './fixtures.js'

// ---- generators for each object ----

const arbTx: fc.Arbitrary<Tx> = fc.record(
  {
    version: fc.integer({ min: 0, max: 0xffff_ffff }),
    inputs: fc.uniqueArray(
      fc.record({ txid: arbBytes32, vout: fc.integer({ min: 0, max: 0xffff_ffff }) }, { noNullPrototype: true }),
      {
        minLength: 1,
        maxLength: 4,
        selector: (o) => `${toHex(o.txid)}:${o.vout}`
      }
    ),
    outputs: fc.array(
      fc.record(
        { valueSats: fc.bigInt({ min: 0n, max: 500_000_000_000_000n }), key: arbBytes32 },
        { noNullPrototype: true }
      ),
      { minLength: 1, maxLength: 4 }
    ),
    locktime: fc.integer({ min: 0, max: 0xffff_ffff })
  },
  { noNullPrototype: true }
)

/** A root state after a few payments, or a partition's sub-state after a few payments. */
const arbState: fc.Arbitrary<PoolState> = fc
  .record({
    genesis: arbGenesis(5),
    payments: fc.array(arbPaymentChoice, { maxLength: 3 }),
    partition: fc.option(arbPartitionChoice, { nil: undefined }),
    subPayments: fc.array(arbPaymentChoice, { maxLength: 2 })
  })
  .map(({ genesis, payments, partition, subPayments }) => {
    let s = initialState(genesis)
    const pay = (st: PoolState, list: typeof payments): PoolState => {
      for (const c of list) {
        const p = paymentFrom(st, c.payer, c.payee, c.fraction)
        if (p) st = applyPayment(st, p, st.heightT + 1)
      }
      return st
    }
    s = pay(s, payments)
    if (partition) {
      const { actives, newBalances } = partitionFrom(s, partition.pick, partition.cuts)
      s = pay(partitionOf(s, actives, newBalances).sub, subPayments)
    }
    return s
  })

const arbStatement = fc
  .record({ state: arbState, choice: arbPartitionChoice, signers: fc.nat() })
  .map(({ state, choice, signers }) => {
    const { actives, newBalances } = partitionFrom(state, choice.pick, choice.cuts)
    const { stmt } = partitionOf(state, actives, newBalances)
    // sign by a subset of actives chosen by the bits of `signers`
    return signStatementBy(
      stmt,
      stmt.actives.filter((_, i) => (signers >> i) & 1)
    )
  })

function flipByte(bytes: Uint8Array, pos: number, mask: number): Uint8Array {
  const out = new Uint8Array(bytes)
  out[pos % out.length]! ^= mask
  return out
}
const arbFlip = fc.record({ pos: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) })

function isDecodeError(e: unknown, context: string): boolean {
  return e instanceof DecodeError && e.message.startsWith(`${context}: `)
}

/** Decoding `bytes` either throws a DecodeError for `context`, or returns (and `changed` must hold). */
function rejectedOr<T>(context: string, decode: () => T, changed: (x: T) => boolean): void {
  let x: T
  try {
    x = decode()
  } catch (e) {
    assert.ok(isDecodeError(e, context), `unexpected error: ${String(e)}`)
    return
  }
  assert.ok(changed(x), 'a modified encoding decoded to an object with the same hash and a valid signature')
}

/** Every proper prefix is rejected with an error naming the object and a field. */
function checkTruncations(bytes: Uint8Array, context: string, decode: (b: Uint8Array) => unknown): void {
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(
      () => decode(bytes.subarray(0, n)),
      (e: unknown) => isDecodeError(e, context),
      `prefix of ${n} bytes`
    )
  }
  assert.throws(() => decode(new Uint8Array([...bytes, 0])), /trailing bytes/)
}

describe('protocol objects', () => {
  describe('Tx', () => {
    it('round-trips, and any flipped byte is rejected or changes the txid', () => {
      fc.assert(
        fc.property(arbTx, arbFlip, (tx, flip) => {
          const bytes = encodeTx(tx)
          assert.deepStrictEqual(decodeTx(bytes), tx)
          rejectedOr(
            'tx',
            () => decodeTx(flipByte(bytes, flip.pos, flip.mask)),
            (t) => !equalBytes(txid(t), txid(tx))
          )
        }),
        { numRuns: 300 }
      )
    })

    it('is Bitcoin non-witness serialization with P2TR outputs', () => {
      const tx: Tx = {
        version: 2,
        inputs: [{ txid: fill32(0x11), vout: 1 }],
        outputs: [{ valueSats: 5000n, key: fill32(0x22) }],
        locktime: 800_144
      }
      const expected =
        '02000000' +
        '01' +
        '11'.repeat(32) +
        '01000000' +
        '00' +
        'feffffff' +
        '01' +
        '8813000000000000' +
        '22' +
        '5120' +
        '22'.repeat(32) +
        '90350c00'
      assert.equal(toHex(encodeTx(tx)), expected)
      assert.equal(txidToDisplayHex(txid(tx)), toHex(txid(tx).reverse()))
    })

    it('rejects truncations, scriptSigs, other scripts and sequences, naming the field', () => {
      const tx: Tx = {
        version: 2,
        inputs: [{ txid: fill32(1), vout: 0 }],
        outputs: [{ valueSats: 1n, key: fill32(2) }],
        locktime: 0
      }
      const bytes = encodeTx(tx)
      checkTruncations(bytes, 'tx', decodeTx)
      const b = new Uint8Array(bytes)
      b[4 + 1 + 36] = 1 // scriptSig length
      assert.throws(
        () => decodeTx(b),
        /^DecodeError: tx: inputs\[0\]: scriptSig: expected an empty scriptSig, got length 1$/
      )
      const c = new Uint8Array(bytes)
      c[4 + 1 + 36 + 1] = 0xff // sequence
      assert.throws(() => decodeTx(c), /tx: inputs\[0\]: sequence: expected 0xfffffffe, got 0xffffffff/)
      const d = new Uint8Array(bytes)
      d[4 + 1 + 41 + 1 + 8 + 1] = 0x00 // OP_0 instead of OP_1
      assert.throws(() => decodeTx(d), /tx: outputs\[0\]: scriptPubKey: not a P2TR script/)
      const e = new Uint8Array(bytes)
      e[4] = 0 // no inputs
      assert.throws(() => decodeTx(e), /tx: inputs: /)
      const big = new Writer()
        .u32(2)
        .varint(1)
        .raw(new Uint8Array(36))
        .varint(0)
        .u32(0xfffffffe)
        .varint(1)
        .u64(2_100_000_000_000_001n)
        .varint(34)
        .u8(0x51)
        .u8(0x20)
        .raw(fill32(5))
        .u32(0)
        .finish()
      assert.throws(() => decodeTx(big), /tx: outputs\[0\]: valueSats: amount 2100000000000001 exceeds 21 million BTC/)
    })
  })

  describe('Genesis', () => {
    it('round-trips, and any flipped byte is rejected or changes the poolId', () => {
      fc.assert(
        fc.property(arbGenesis(6), arbFlip, (g, flip) => {
          const bytes = encodeGenesis(g)
          assert.deepStrictEqual(decodeGenesis(bytes), g)
          rejectedOr(
            'genesis',
            () => decodeGenesis(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !equalBytes(poolIdOf(x), poolIdOf(g))
          )
        }),
        { numRuns: 100 }
      )
    })

    it('rejects truncations and over-limit fields, naming the field', () => {
      const g = testGenesis(3)
      checkTruncations(encodeGenesis(g), 'genesis', decodeGenesis)
      const tooMany = new Writer()
        .u8(1)
        .varint(1025)
        .raw(new Uint8Array(1025 * 40))
        .finish()
      assert.throws(() => decodeGenesis(tooMany), /^DecodeError: genesis: members: count 1025 exceeds limit 1024$/)
      const longPeer = new Writer()
        .u8(1)
        .varint(2)
        .bytes32(MEMBERS[0]!.publicKey)
        .string('a'.repeat(200), 1000)
        .finish()
      assert.throws(
        () => decodeGenesis(longPeer),
        /^DecodeError: genesis: members\[0\]: peerId: length 200 exceeds limit 128$/
      )
      const notSorted = new Writer().u8(1).varint(2)
      notSorted.bytes32(MEMBERS[1]!.publicKey).string('a', 128).bytes32(MEMBERS[0]!.publicKey).string('b', 128)
      assert.throws(() => decodeGenesis(notSorted.finish()), /genesis: members\[1\]: key: members not sorted by key/)
      const badKey = new Writer().u8(1).varint(1).bytes32(new Uint8Array(32).fill(0xff)).string('a', 128).finish()
      assert.throws(() => decodeGenesis(badKey), /genesis: members\[0\]: key: not a valid BIP340 x-only public key/)
      const huge = new Uint8Array(MAX_OBJECT_BYTES + 1)
      assert.throws(() => decodeGenesis(huge), /genesis: encoding is 262145 bytes, over the limit of 262144/)
      const v2 = encodeGenesis(g)
      v2[0] = 2
      assert.throws(() => decodeGenesis(v2), /^DecodeError: genesis: version: unsupported version 2 \(supported: 1\)$/)
    })

    it('refuses invalid genesis on encoding, naming the field', () => {
      const g = testGenesis(3)
      assert.throws(() => encodeGenesis({ ...g, balances: [1n, 2n] }), /genesis.balances: expected 3 balances/)
      assert.throws(
        () => encodeGenesis({ ...g, balances: [1n, -2n, 3n] }),
        /genesis.balances\[1\]: amount -2 is not within/
      )
      assert.throws(
        () => encodeGenesis({ ...g, balances: [2_000_000_000_000_000n, 200_000_000_000_000n, 0n] }),
        /genesis.balances: total 2200000000000000 exceeds 21 million BTC/
      )
      assert.throws(
        () => encodeGenesis({ ...g, members: [g.members[1]!, g.members[0]!, g.members[2]!] }),
        /genesis.members\[1\].key: members not sorted by key/
      )
      assert.throws(
        () =>
          encodeGenesis({
            ...g,
            members: [g.members[0]!, { ...g.members[1]!, peerId: g.members[0]!.peerId }, g.members[2]!]
          }),
        /duplicate peer id/
      )
      assert.throws(
        () => encodeGenesis({ ...g, members: [g.members[0]!], balances: [1n] }),
        /genesis.members: at least 2 members required, got 1/
      )
      assert.throws(
        () => encodeGenesis({ ...g, kickoutDelayBlocks: 0 }),
        /genesis.kickoutDelayBlocks: 0 is not within 1..52560/
      )
      assert.throws(() => encodeGenesis({ ...g, creationHeight: 499_999_990 }), /genesis.creationHeight: /)
    })
  })

  describe('PoolState and SignedState', () => {
    it('round-trips, and any flipped byte is rejected or changes the state hash', () => {
      fc.assert(
        fc.property(arbState, arbFlip, (s, flip) => {
          const bytes = encodeState(s)
          assert.deepStrictEqual(decodeState(bytes), s)
          rejectedOr(
            'state',
            () => decodeState(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !equalBytes(stateHash(x), stateHash(s))
          )
        }),
        { numRuns: 100 }
      )
    })

    it('signed state: round-trips, verifies, and any flipped byte is rejected or invalidates it', () => {
      fc.assert(
        fc.property(arbState, arbFlip, (s, flip) => {
          const ss = signAllState(s)
          assert.deepStrictEqual(verifySignedState(ss), { ok: true })
          const bytes = encodeSignedState(ss)
          assert.deepStrictEqual(decodeSignedState(bytes), ss)
          rejectedOr(
            'signed state',
            () => decodeSignedState(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !verifySignedState(x).ok
          )
        }),
        { numRuns: 15 }
      )
    })

    it('rejects truncations naming the field', () => {
      const s = initialState(testGenesis(3))
      checkTruncations(encodeState(s), 'state', decodeState)
      checkTruncations(encodeSignedState(signAllState(s)), 'signed state', decodeSignedState)
      const bytes = encodeSignedState(signAllState(s))
      assert.throws(
        () => decodeSignedState(bytes.subarray(0, bytes.length - 100)),
        /^DecodeError: signed state: signatures: expected 192 bytes, got 92$/
      )
    })
  })

  describe('UpdateRequest', () => {
    it('round-trips, and any flipped byte is rejected or invalidates the signature', () => {
      fc.assert(
        fc.property(arbState, arbPaymentChoice, arbBytes32, fc.nat(), arbFlip, (s, c, roundId, deadline, flip) => {
          const payment = paymentFrom(s, c.payer, c.payee, c.fraction)
          fc.pre(payment !== null)
          const proposer = s.pool.members[c.payee % s.pool.members.length]!
          const q = signUpdateRequest(
            makeUpdateRequest(s, {
              proposer,
              payment: payment!,
              heightT: s.heightT + 3,
              deadlineMs: deadline,
              roundId
            }),
            memberByKey(proposer).secretKey
          )
          assert.ok(verifyUpdateRequestSignature(q))
          const bytes = encodeUpdateRequest(q)
          assert.deepStrictEqual(decodeUpdateRequest(bytes), q)
          rejectedOr(
            'update request',
            () => decodeUpdateRequest(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !verifyUpdateRequestSignature(x)
          )
          checkTruncations(bytes, 'update request', decodeUpdateRequest)
        }),
        { numRuns: 30 }
      )
    })

    it('refuses more than 1,024 balances before reading them', () => {
      const w = new Writer().u8(1).raw(fill32(1)).u8(0).u32(0).raw(fill32(2)).raw(fill32(3)).u32(0).varint(1100)
      assert.throws(
        () => decodeUpdateRequest(w.finish()),
        /^DecodeError: update request: newBalances: count 1100 exceeds limit 1024$/
      )
    })
  })

  describe('PartitionRequest', () => {
    it('round-trips, and any flipped byte is rejected or invalidates the signature', () => {
      fc.assert(
        fc.property(arbState, arbPartitionChoice, arbBytes32, arbFlip, (s, choice, roundId, flip) => {
          const { actives, newBalances } = partitionFrom(s, choice.pick, choice.cuts)
          const proposer = actives[0]!
          const q = signPartitionRequest(
            makePartitionRequest(s, {
              proposer,
              actives,
              newBalances,
              heightT: s.heightT,
              deadlineMs: 1_700_000_000_000,
              roundId
            }),
            memberByKey(proposer).secretKey
          )
          assert.ok(verifyPartitionRequestSignature(q))
          const bytes = encodePartitionRequest(q)
          assert.deepStrictEqual(decodePartitionRequest(bytes), q)
          rejectedOr(
            'partition request',
            () => decodePartitionRequest(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !verifyPartitionRequestSignature(x)
          )
          checkTruncations(bytes, 'partition request', decodePartitionRequest)
        }),
        { numRuns: 30 }
      )
    })
  })

  describe('MergeRequest', () => {
    it('round-trips, and any flipped byte is rejected or invalidates the signature', () => {
      fc.assert(
        fc.property(arbState, arbBytes32, fc.nat(), arbFlip, (s, roundId, deadline, flip) => {
          // any redistribution with the pool's total is a well-formed merge (who holds what is the board's)
          const folded = [...s.balances].reverse()
          const proposer = s.pool.members[0]!
          const q = signMergeRequest(
            makeMergeRequest(s, { proposer, folded, heightT: s.heightT + 1, deadlineMs: deadline, roundId }),
            memberByKey(proposer).secretKey
          )
          assert.ok(verifyMergeRequestSignature(q))
          const bytes = encodeMergeRequest(q)
          assert.deepStrictEqual(decodeMergeRequest(bytes), q)
          rejectedOr(
            'merge request',
            () => decodeMergeRequest(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !verifyMergeRequestSignature(x)
          )
          checkTruncations(bytes, 'merge request', decodeMergeRequest)
        }),
        { numRuns: 30 }
      )
    })
  })

  describe('SignatureShare', () => {
    it('round-trips; a flipped byte is rejected, invalidates the signature, or only touches routing fields', () => {
      fc.assert(
        fc.property(
          fc.constantFrom('state' as const, 'statement' as const),
          arbBytes32,
          arbBytes32,
          arbBytes32,
          fc.nat(MEMBERS.length - 1),
          arbFlip,
          (kind, poolId, roundId, subject, who, flip) => {
            const m = MEMBERS[who]!
            const share = makeSignatureShare({ kind, poolId, roundId, subject, member: m.publicKey }, m.secretKey)
            assert.ok(verifySignatureShare(share))
            const bytes = encodeSignatureShare(share)
            assert.deepStrictEqual(decodeSignatureShare(bytes), share)
            // kind, poolId and roundId route the share; the signature covers `subject` (a tagged hash
            // that itself commits to the pool), so a change there must not be mistaken for a signature.
            rejectedOr(
              'signature share',
              () => decodeSignatureShare(flipByte(bytes, flip.pos, flip.mask)),
              (x) =>
                !verifySignatureShare(x) ||
                (equalBytes(x.subject, subject) &&
                  equalBytes(x.member, m.publicKey) &&
                  equalBytes(x.signature, share.signature))
            )
            checkTruncations(bytes, 'signature share', decodeSignatureShare)
          }
        ),
        { numRuns: 60 }
      )
      const bad = encodeSignatureShare(
        makeSignatureShare(
          { kind: 'state', poolId: fill32(1), roundId: fill32(2), subject: fill32(3), member: MEMBERS[0]!.publicKey },
          MEMBERS[0]!.secretKey
        )
      )
      bad[1] = 7
      assert.throws(
        () => decodeSignatureShare(bad),
        /^DecodeError: signature share: kind: unknown share kind 7 \(0 = state, 1 = statement\)$/
      )
    })
  })

  describe('PartitionStatement', () => {
    it('round-trips, and any flipped byte is rejected, changes the statement id, or invalidates a signature', () => {
      fc.assert(
        fc.property(arbStatement, arbFlip, (stmt, flip) => {
          const bytes = encodeStatement(stmt)
          assert.deepStrictEqual(decodeStatement(bytes), stmt)
          assert.deepStrictEqual(verifyStatement(stmt, { requireComplete: false }), { ok: true })
          const id = statementId(stmt)
          rejectedOr(
            'partition statement',
            () => decodeStatement(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !equalBytes(statementId(x), id) || !verifyStatement(x, { requireComplete: false }).ok
          )
        }),
        { numRuns: 40 }
      )
    })

    it('rejects truncations and malformed fields, naming the field', () => {
      const s = initialState(testGenesis(4))
      const { stmt } = partitionOf(s, [s.pool.members[0]!, s.pool.members[2]!], [150_000n, 50_000n])
      const signed = signStatementBy(stmt)
      const bytes = encodeStatement(signed)
      checkTruncations(bytes, 'partition statement', decodeStatement)
      assert.throws(
        () => decodeStatement(bytes.subarray(0, bytes.length - 53)),
        /^DecodeError: partition statement: signatures: count 2 needs at least 130 bytes, got 77$/
      )
      const tooMany = new Uint8Array(bytes)
      tooMany[bytes.length - 2 * 65 - 1] = 3 // signature count 3 > 2 actives
      assert.throws(() => decodeStatement(tooMany), /partition statement: signatures: count 3 exceeds limit 2/)
      const unsigned = encodeStatement(stmt)
      const tx = new Uint8Array(unsigned)
      tx[unsigned.length - 2] ^= 1 // locktime of the intermediate transaction
      assert.throws(
        () => decodeStatement(tx),
        /partition statement: intermediateTx: does not match the transaction derived from the statement/
      )
      const dupIndex = encodeStatement({ ...signed, signatures: [signed.signatures[0]!] })
      const twice = new Writer()
        .raw(dupIndex.subarray(0, dupIndex.length - 66))
        .varint(2)
        .varint(1)
        .raw(signed.signatures[1]!.signature)
        .varint(1)
        .raw(signed.signatures[1]!.signature)
        .finish()
      assert.throws(
        () => decodeStatement(twice),
        /partition statement: signatures\[1\]: index: indices must be strictly increasing \(got 1 after 1\)/
      )
    })
  })

  describe('EquivocationEvidence', () => {
    it('round-trips, verifies, and any flipped byte is rejected or invalidates it', () => {
      const s = initialState(testGenesis(4))
      const [a, b, c] = s.pool.members
      const s1 = signStatementBy(partitionOf(s, [a!, b!], [200_000n, 0n]).stmt)
      const s2 = signStatementBy(partitionOf(s, [a!, c!], [0n, 200_000n]).stmt)
      const ev = makeEvidence(s1, s2, a!)
      const bytes = encodeEvidence(ev)
      assert.deepStrictEqual(decodeEvidence(bytes), ev)
      assert.deepStrictEqual(verifyEvidence(ev, s.pool.poolId), { ok: true })
      checkTruncations(bytes, 'equivocation evidence', decodeEvidence)
      fc.assert(
        fc.property(arbFlip, (flip) => {
          rejectedOr(
            'equivocation evidence',
            () => decodeEvidence(flipByte(bytes, flip.pos, flip.mask)),
            (x) => !verifyEvidence(x, s.pool.poolId).ok
          )
        }),
        { numRuns: 150 }
      )
    })
  })

  it('encoders name the invalid field', () => {
    const tx: Tx = {
      version: 2,
      inputs: [
        { txid: fill32(1), vout: 0 },
        { txid: new Uint8Array(31), vout: 0 }
      ],
      outputs: [{ valueSats: 1n, key: fill32(2) }],
      locktime: 0
    }
    assert.throws(() => encodeTx(tx), /^EncodeError: tx\.inputs\[1\]\.txid: expected 32 bytes, got 31$/)
    assert.throws(
      () => encodeTx({ ...tx, inputs: [tx.inputs[0]!, tx.inputs[0]!] }),
      /^EncodeError: tx\.inputs\[1\]: outpoint spent twice in the same transaction$/
    )
    assert.throws(
      () => encodeTx({ ...tx, inputs: [tx.inputs[0]!], outputs: [{ valueSats: -1n, key: fill32(2) }] }),
      /^EncodeError: tx\.outputs\[0\]\.valueSats: amount -1 is not within/
    )
    const s = initialState(testGenesis(3))
    const { stmt } = partitionOf(s, [s.pool.members[0]!], [s.balances[0]!])
    assert.throws(
      () => encodeStatement({ ...stmt, signatures: [{ index: 0, signature: new Uint8Array(3) }] }),
      /^EncodeError: partition statement\.signatures\[0\]\.signature: expected 64 bytes, got 3$/
    )
    assert.throws(
      () => encodeStatement({ ...stmt, signatures: [{ index: 1, signature: new Uint8Array(64) }] }),
      /^EncodeError: partition statement\.signatures\[0\]\.index: indices must be strictly increasing and below 1, got 1$/
    )
    assert.throws(
      () => encodeState({ ...s, balances: [1n, 2n, 3n] }),
      /^EncodeError: state\.balances: sum 6 differs from the pool total 300000$/
    )
    assert.throws(
      () => encodeSignedState({ state: s, signatures: [new Uint8Array(64), new Uint8Array(64), new Uint8Array(2)] }),
      /^EncodeError: signed state\.signatures\[2\]: expected 64 bytes, got 2$/
    )
  })

  it('decoders never throw anything but DecodeError on random input', () => {
    const decoders: [string, (b: Uint8Array) => unknown][] = [
      ['tx', decodeTx],
      ['genesis', decodeGenesis],
      ['state', decodeState],
      ['signed state', decodeSignedState],
      ['update request', decodeUpdateRequest],
      ['partition request', decodePartitionRequest],
      ['signature share', decodeSignatureShare],
      ['partition statement', decodeStatement],
      ['equivocation evidence', decodeEvidence]
    ]
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(decoders.length - 1), fc.nat(3), (raw, which, ver) => {
        const [ctx, decode] = decoders[which]!
        const bytes = new Uint8Array(raw)
        if (bytes.length > 0 && ver > 0 && ctx !== 'tx') bytes[0] = 1 // get past the version byte most of the time
        try {
          decode(bytes)
        } catch (e) {
          assert.ok(isDecodeError(e, ctx), `${ctx}: ${String(e)}`)
        }
      }),
      { numRuns: 2000 }
    )
  })
})
