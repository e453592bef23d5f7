import assert from 'node:assert/strict'
import fc from 'fast-check'
import { DecodeError, EncodeError, Writer } from '../../protocol/codec.js'
import {
  DEFAULT_WIRE_LIMITS,
  MESSAGE_TYPES,
  TYPE_CODES,
  WIRE_VERSION,
  decodeMessage,
  encodeMessage,
  maxSnapMessageBytes,
  peekMessageType,
  resolveWireLimits,
  type WireLimits
} from '../../board/wire.js'
import { ENTRY_OVERHEAD_BYTES } from '../../board/raft/hash.js'
import { MAX_MEMBERS, MAX_READ_CONTEXT_BYTES, RAFT_CONFIG_DEFAULTS } from '../../board/raft/index.js'
import type { AppMessage, Entry, Message, MessageType, SnapMessage } from '../../board/raft/types.js'
import { arbMessage, arbMessageOfType } from './arbitraries.js'

const RUNS = 300
const h32 = (b: number): Uint8Array => new Uint8Array(32).fill(b)

/** Runs `f` and requires a DecodeError whose message matches `re`. */
function rejects(f: () => unknown, re: RegExp): void {
  assert.throws(f, (err: unknown) => {
    assert.ok(err instanceof DecodeError, `expected a DecodeError, got ${String(err)}`)
    assert.match(err.message, re)
    return true
  })
}

/** Decodes, and requires a DecodeError or a message that re-encodes to exactly the same bytes. */
function decodeCanonicalOrReject(bytes: Uint8Array, limits: WireLimits = DEFAULT_WIRE_LIMITS): void {
  let m: Message
  try {
    m = decodeMessage(bytes, limits)
  } catch (err) {
    if (err instanceof DecodeError) return
    throw err
  }
  assert.deepEqual(encodeMessage(m, limits), bytes)
}

function app(entries: number, dataBytes: number): AppMessage {
  const list: Entry[] = []
  for (let i = 0; i < entries; i++)
    list.push({ index: 11 + i, term: 3, type: 'normal', data: new Uint8Array(dataBytes), hash: h32(i) })
  return {
    type: 'app',
    from: 'a',
    to: 'b',
    term: 3,
    prevIndex: 10,
    prevTerm: 3,
    prevHash: h32(9),
    entries: list,
    commit: 9
  }
}

describe('wire: Raft message codec', () => {
  it('has a generator and a type code for every message type, codes unique', () => {
    assert.deepEqual(new Set(Object.keys(arbMessageOfType)), new Set(MESSAGE_TYPES))
    assert.equal(new Set(Object.values(TYPE_CODES)).size, MESSAGE_TYPES.length)
  })

  for (const type of Object.keys(arbMessageOfType) as MessageType[]) {
    it(`round-trips every ${type} message, canonically`, () => {
      fc.assert(
        fc.property(arbMessageOfType[type] as fc.Arbitrary<Message>, (m) => {
          const bytes = encodeMessage(m)
          assert.equal(bytes[0], WIRE_VERSION)
          assert.equal(peekMessageType(bytes), m.type)
          const back = decodeMessage(bytes)
          assert.deepEqual(back, m)
          assert.deepEqual(encodeMessage(back), bytes)
        }),
        { numRuns: RUNS }
      )
    })
  }

  it('decodes a Buffer (as read off the network) into plain Uint8Arrays that share nothing with it', () => {
    const m = app(2, 5)
    const buf = Buffer.from(encodeMessage(m))
    const back = decodeMessage(buf) as AppMessage
    assert.deepEqual(back, m)
    assert.ok(!Buffer.isBuffer(back.entries[0]!.data))
    assert.notEqual(back.entries[0]!.data.buffer, buf.buffer)
    buf.fill(0xee)
    assert.deepEqual(back, m)
  })

  it('rejects every truncation of a valid encoding', () => {
    fc.assert(
      fc.property(arbMessage, fc.nat(), (m, cut) => {
        const bytes = encodeMessage(m)
        const len = cut % bytes.length
        assert.throws(() => decodeMessage(bytes.subarray(0, len)), DecodeError)
      }),
      { numRuns: RUNS }
    )
  })

  it('rejects a valid encoding with bytes appended', () => {
    fc.assert(
      fc.property(arbMessage, fc.uint8Array({ minLength: 1, maxLength: 20 }), (m, extra) => {
        const bytes = encodeMessage(m)
        const longer = new Uint8Array(bytes.length + extra.length)
        longer.set(bytes)
        longer.set(extra, bytes.length)
        rejects(() => decodeMessage(longer), /trailing bytes/)
      }),
      { numRuns: RUNS }
    )
  })

  it('never fails on random bytes with anything but DecodeError; whatever it accepts is canonical', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => decodeCanonicalOrReject(bytes)),
      { numRuns: 2000 }
    )
    // With a valid header the decoder gets past the type byte and into every body.
    const header = fc.tuple(
      fc.constantFrom(...Object.values(TYPE_CODES), 0, 14, 255),
      fc.uint8Array({ maxLength: 200 })
    )
    fc.assert(
      fc.property(header, ([code, rest]) => {
        const bytes = new Uint8Array(2 + rest.length)
        bytes[0] = WIRE_VERSION
        bytes[1] = code
        bytes.set(rest, 2)
        decodeCanonicalOrReject(bytes)
      }),
      { numRuns: 2000 }
    )
  })

  it('never fails on mutated valid encodings with anything but DecodeError', () => {
    const small = resolveWireLimits({
      maxEntriesPerMessage: 4,
      maxNodeIdBytes: 16,
      maxReadContextBytes: 8,
      maxSnapshotBytes: 1000,
      maxConfigurationNodes: 6
    })
    fc.assert(
      fc.property(arbMessage, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }), (m, edits) => {
        const bytes = encodeMessage(m).slice()
        for (const [at, value] of edits) bytes[at % bytes.length] = value
        decodeCanonicalOrReject(bytes)
        decodeCanonicalOrReject(bytes, small)
      }),
      { numRuns: 2000 }
    )
  })

  describe('errors name the field', () => {
    const good = encodeMessage(app(1, 10))

    it('version and type', () => {
      const b = good.slice()
      b[0] = 1
      rejects(() => decodeMessage(b), /^raft message: version: unsupported version 1/)
      b[0] = WIRE_VERSION
      b[1] = 0
      rejects(() => decodeMessage(b), /^raft message: type: unknown message type 0/)
      b[1] = 200
      rejects(() => decodeMessage(b), /^raft message: type: unknown message type 200/)
      rejects(() => decodeMessage(new Uint8Array()), /^raft message: version/)
    })

    it('a hash that is cut short', () => {
      // The last two bytes are the presence flags (0) of the election and commit certificates.
      rejects(
        () => decodeMessage(good.subarray(0, good.length - 7)),
        /^raft message: entries\[0\]: hash: expected 32 bytes, got 27/
      )
    })

    it('booleans, flags and enums out of range', () => {
      const vote = encodeMessage({ type: 'vote', from: 'a', to: 'b', term: 1, lastIndex: 2, lastTerm: 1, force: true })
      const v = vote.slice()
      // force, then the presence flag of the candidate's commit (0).
      v[v.length - 2] = 2
      rejects(() => decodeMessage(v), /^raft message: force: boolean must be 0 or 1, got 2/)
      const hb = encodeMessage({ type: 'heartbeatResp', from: 'a', to: 'b', term: 1, context: null }).slice()
      hb[hb.length - 1] = 7
      rejects(() => decodeMessage(hb), /^raft message: context: presence flag must be 0 or 1, got 7/)
      const a = good.slice()
      // version, type, from (2), to (2), term, prevIndex, prevTerm, prevHash (32), commit, count, index, term, then the entry type.
      const typeAt = 2 + 2 + 2 + 1 + 1 + 1 + 32 + 1 + 1 + 1 + 1
      assert.equal(a[typeAt], 0)
      a[typeAt] = 9
      rejects(() => decodeMessage(a), /^raft message: entries\[0\]: type: unknown entry type 9/)
    })

    it('non-minimal varints', () => {
      const w = new Writer().u8(WIRE_VERSION).u8(TYPE_CODES.timeoutNow).string('a', 10).string('b', 10).u8(0xfd).u16(5)
      rejects(() => decodeMessage(w.finish()), /^raft message: term: non-minimal varint/)
    })

    it('empty and over-long node ids', () => {
      const empty = new Writer()
        .u8(WIRE_VERSION)
        .u8(TYPE_CODES.timeoutNow)
        .string('', 10)
        .string('b', 10)
        .varint(1)
        .finish()
      rejects(() => decodeMessage(empty), /^raft message: from: empty node id/)
      const long = encodeMessage({ type: 'timeoutNow', from: 'a'.repeat(20), to: 'b', term: 1 })
      rejects(
        () => decodeMessage(long, resolveWireLimits({ maxNodeIdBytes: 19 })),
        /^raft message: from: length 20 exceeds limit 19/
      )
    })

    it('invalid UTF-8 in a node id', () => {
      const b = new Writer()
        .u8(WIRE_VERSION)
        .u8(TYPE_CODES.timeoutNow)
        .u8(2)
        .raw(new Uint8Array([0xc3, 0x28]))
        .string('b', 10)
        .varint(1)
        .finish()
      rejects(() => decodeMessage(b), /^raft message: from: invalid UTF-8/)
    })

    it('counts and lengths over the limits', () => {
      const four = encodeMessage(app(4, 10))
      rejects(
        () => decodeMessage(four, resolveWireLimits({ maxEntriesPerMessage: 3 })),
        /^raft message: entries: count 4 exceeds limit 3/
      )
      rejects(
        () => decodeMessage(four, resolveWireLimits({ maxEntryBytes: 9 })),
        /^raft message: entries\[0\]: data: length 10 exceeds limit 9/
      )
      rejects(
        () => decodeMessage(four, resolveWireLimits({ maxMessageBytes: four.length - 1, maxEntryBytes: 10 })),
        /exceeds limit/
      )
      const ctx = encodeMessage({ type: 'readIndex', from: 'a', to: 'b', term: 1, context: new Uint8Array(9) })
      rejects(
        () => decodeMessage(ctx, resolveWireLimits({ maxReadContextBytes: 8 })),
        /^raft message: context: length 9 exceeds limit 8/
      )
    })

    it('a forged count that the input cannot hold', () => {
      const w = new Writer().u8(WIRE_VERSION).u8(TYPE_CODES.app).string('a', 10).string('b', 10).varint(1)
      w.varint(0).varint(0).bytes32(h32(0)).varint(0).varint(60_000)
      rejects(() => decodeMessage(w.finish()), /^raft message: entries: count 60000 needs at least/)
    })

    it('snapshot limits', () => {
      const snap: SnapMessage = {
        type: 'snap',
        from: 'a',
        to: 'b',
        term: 2,
        snapshot: {
          meta: { index: 5, term: 2, hash: h32(1), configuration: { voters: ['a', 'b', 'c'], learners: ['d'] } },
          data: new Uint8Array(100)
        }
      }
      const bytes = encodeMessage(snap)
      rejects(
        () => decodeMessage(bytes, resolveWireLimits({ maxSnapshotBytes: 99 })),
        /^raft message: snapshot: data: length 100 exceeds limit 99/
      )
      rejects(
        () => decodeMessage(bytes, resolveWireLimits({ maxConfigurationNodes: 3 })),
        /^raft message: snapshot: configuration: learners: count 1 exceeds limit 0/
      )
      rejects(
        () => decodeMessage(bytes, resolveWireLimits({ maxConfigurationNodes: 2 })),
        /^raft message: snapshot: configuration: voters: count 3 exceeds limit 2/
      )
      // A snapshot may exceed maxMessageBytes: its own bound is maxSnapshotBytes plus metadata.
      const limits = resolveWireLimits({ maxMessageBytes: 50, maxEntryBytes: 50 })
      assert.deepEqual(decodeMessage(bytes, limits), snap)
      assert.ok(maxSnapMessageBytes(limits) > limits.maxSnapshotBytes)
    })
  })

  describe('the encoder refuses what a decoder would refuse', () => {
    it('hashes that are not 32 bytes', () => {
      const m = app(1, 1)
      assert.throws(() => encodeMessage({ ...m, prevHash: new Uint8Array(31) }), EncodeError)
      assert.throws(
        () => encodeMessage({ ...m, entries: [{ ...m.entries[0]!, hash: new Uint8Array(33) }] }),
        /entries: hash: expected 32 bytes, got 33/
      )
    })

    it('negative, fractional or unsafe integers', () => {
      for (const term of [-1, 1.5, 2 ** 53, NaN]) {
        assert.throws(() => encodeMessage({ type: 'timeoutNow', from: 'a', to: 'b', term }), /term: not a varint/)
      }
    })

    it('empty or over-long node ids, too many entries, unknown types', () => {
      assert.throws(
        () => encodeMessage({ type: 'timeoutNow', from: '', to: 'b', term: 1 }),
        /from: node id must be a non-empty string/
      )
      assert.throws(
        () => encodeMessage({ type: 'timeoutNow', from: 'x'.repeat(129), to: 'b', term: 1 }),
        /from: length 129 bytes exceeds limit 128/
      )
      assert.throws(
        () => encodeMessage(app(5, 0), resolveWireLimits({ maxEntriesPerMessage: 4 })),
        /entries: count 5 exceeds limit 4/
      )
      assert.throws(
        () => encodeMessage({ type: 'nope', from: 'a', to: 'b', term: 1 } as unknown as Message),
        /type: unknown message type nope/
      )
      assert.throws(
        () => encodeMessage({ ...app(1, 0), entries: [{ ...app(1, 0).entries[0]!, type: 'odd' as 'normal' }] }),
        /unknown entry type odd/
      )
    })

    it('a message over maxMessageBytes', () => {
      assert.throws(
        () => encodeMessage(app(10, 100), resolveWireLimits({ maxMessageBytes: 1000, maxEntryBytes: 100 })),
        /message: encoded size \d+ bytes exceeds limit 1000/
      )
    })
  })

  describe('limits', () => {
    it('resolveWireLimits fills defaults and names a bad key', () => {
      assert.deepEqual(resolveWireLimits(), DEFAULT_WIRE_LIMITS)
      assert.equal(resolveWireLimits({ maxEntriesPerMessage: 7 }).maxEntriesPerMessage, 7)
      assert.throws(() => resolveWireLimits({ maxSnapshotBytes: 0 }), /maxSnapshotBytes must be a positive integer/)
      assert.throws(
        () => resolveWireLimits({ maxEntryBytes: 2 ** 30 }),
        /maxEntryBytes .* must not exceed maxMessageBytes/
      )
      assert.throws(() => resolveWireLimits({ maxBogusBytes: 1 } as Partial<WireLimits>), /unknown key maxBogusBytes/)
    })

    it('the defaults carry the largest messages the Raft core builds with its defaults', () => {
      // Append: the core sends entries up to maxMessageBytes of entryBytes() (at least one entry).
      const emptyEntries = Math.floor(RAFT_CONFIG_DEFAULTS.maxMessageBytes / ENTRY_OVERHEAD_BYTES) + 1
      assert.ok(emptyEntries <= DEFAULT_WIRE_LIMITS.maxEntriesPerMessage)
      const many = app(emptyEntries, 0)
      const far = 2 ** 40 // indexes and terms in 9-byte varints: the worst case for size
      const worst: AppMessage = {
        ...many,
        term: far,
        prevIndex: far,
        prevTerm: far,
        commit: far,
        entries: many.entries.map((e, i) => ({ ...e, index: far + i, term: far }))
      }
      assert.ok(encodeMessage(worst).length <= DEFAULT_WIRE_LIMITS.maxMessageBytes)
      // One entry of the largest payload the core accepts, alone in a message.
      assert.ok(DEFAULT_WIRE_LIMITS.maxEntryBytes >= RAFT_CONFIG_DEFAULTS.maxEntryBytes)
      const big = app(1, RAFT_CONFIG_DEFAULTS.maxEntryBytes)
      assert.deepEqual(decodeMessage(encodeMessage(big)), big)
      // Reads and configurations.
      assert.equal(DEFAULT_WIRE_LIMITS.maxReadContextBytes, MAX_READ_CONTEXT_BYTES)
      assert.ok(DEFAULT_WIRE_LIMITS.maxConfigurationNodes >= MAX_MEMBERS)
    })
  })
})
