import assert from 'node:assert/strict'
import fc from 'fast-check'
import { DecodeError, EncodeError, type Reader, Writer, decodeAll, varintSize } from '../../protocol/codec.js'
import { fromHex, toHex } from '../../protocol/bytes.js'

type Op =
  | { k: 'u8'; v: number }
  | { k: 'u16'; v: number }
  | { k: 'u32'; v: number }
  | { k: 'u64'; v: bigint }
  | { k: 'u53'; v: number }
  | { k: 'varint'; v: number }
  | { k: 'b32'; v: Uint8Array }
  | { k: 'bytes'; v: Uint8Array }
  | { k: 'string'; v: string }
  | { k: 'array'; v: number[] }

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((v) => ({ k: 'u8' as const, v })),
  fc.integer({ min: 0, max: 0xffff }).map((v) => ({ k: 'u16' as const, v })),
  fc.integer({ min: 0, max: 0xffff_ffff }).map((v) => ({ k: 'u32' as const, v })),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((v) => ({ k: 'u64' as const, v })),
  fc.maxSafeNat().map((v) => ({ k: 'u53' as const, v })),
  fc
    .oneof(
      fc.integer({ min: 0, max: 0x1_0000_0100 }),
      fc.maxSafeNat(),
      fc.constantFrom(0xfc, 0xfd, 0xffff, 0x10000, 0xffff_ffff, 2 ** 32)
    )
    .map((v) => ({ k: 'varint' as const, v })),
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((v) => ({ k: 'b32' as const, v })),
  fc.uint8Array({ maxLength: 300 }).map((v) => ({ k: 'bytes' as const, v })),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((v) => ({ k: 'string' as const, v })),
  fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { maxLength: 20 }).map((v) => ({ k: 'array' as const, v }))
)

function writeOps(ops: Op[]): Uint8Array {
  const w = new Writer(8)
  for (const op of ops) {
    switch (op.k) {
      case 'u8':
        w.u8(op.v)
        break
      case 'u16':
        w.u16(op.v)
        break
      case 'u32':
        w.u32(op.v)
        break
      case 'u64':
        w.u64(op.v)
        break
      case 'u53':
        w.u53(op.v)
        break
      case 'varint':
        w.varint(op.v)
        break
      case 'b32':
        w.bytes32(op.v)
        break
      case 'bytes':
        w.bytes(op.v, 1000)
        break
      case 'string':
        w.string(op.v, 1000)
        break
      case 'array':
        w.array(op.v, 100, (w, x) => w.u32(x))
        break
    }
  }
  return w.finish()
}

function readOps(ops: Op[], r: Reader): unknown[] {
  return ops.map((op, i) => {
    const name = `f${i}`
    switch (op.k) {
      case 'u8':
        return r.u8(name)
      case 'u16':
        return r.u16(name)
      case 'u32':
        return r.u32(name)
      case 'u64':
        return r.u64(name)
      case 'u53':
        return r.u53(name)
      case 'varint':
        return r.varint(name)
      case 'b32':
        return r.bytes32(name)
      case 'bytes':
        return r.bytes(name, 1000)
      case 'string':
        return r.string(name, 1000)
      case 'array':
        return r.array(name, 100, (r) => r.u32('item'), 4)
    }
  })
}

describe('protocol/codec', () => {
  it('round-trips any sequence of fields', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { maxLength: 30 }), (ops) => {
        const bytes = writeOps(ops)
        const back = decodeAll(bytes, 'test', (r) => readOps(ops, r))
        assert.deepStrictEqual(
          back,
          ops.map((o) => o.v)
        )
      }),
      { numRuns: 300 }
    )
  })

  it('rejects every truncation with an error naming a field', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 10 }), fc.nat(), (ops, cut) => {
        const bytes = writeOps(ops)
        fc.pre(bytes.length > 0)
        const n = cut % bytes.length
        assert.throws(
          () => decodeAll(bytes.subarray(0, n), 'test', (r) => readOps(ops, r)),
          (e: unknown) => e instanceof DecodeError && /^test: f\d+/.test(e.message)
        )
      }),
      { numRuns: 300 }
    )
  })

  it('encodes varints in Bitcoin CompactSize form at the boundaries', () => {
    const cases: [number, string][] = [
      [0, '00'],
      [0xfc, 'fc'],
      [0xfd, 'fdfd00'],
      [0xffff, 'fdffff'],
      [0x10000, 'fe00000100'],
      [0xffff_ffff, 'feffffffff'],
      [2 ** 32, 'ff0000000001000000'],
      [Number.MAX_SAFE_INTEGER, 'ffffffffffffff1f00']
    ]
    for (const [n, hex] of cases) {
      const bytes = new Writer().varint(n).finish()
      assert.equal(toHex(bytes), hex, `varint ${n}`)
      assert.equal(varintSize(n), bytes.length)
      assert.equal(
        decodeAll(bytes, 'v', (r) => r.varint('n')),
        n
      )
    }
  })

  it('rejects non-minimal and oversized varints', () => {
    const bad: [string, RegExp][] = [
      ['fd0000', /v: n: non-minimal varint \(0 in 3 bytes\)/],
      ['fdfc00', /non-minimal varint \(252 in 3 bytes\)/],
      ['feffff0000', /non-minimal varint \(65535 in 5 bytes\)/],
      ['ffffffffff00000000', /non-minimal varint \(4294967295 in 9 bytes\)/],
      ['ff0000000000002000', /exceeds 9007199254740991/]
    ]
    for (const [hex, re] of bad) {
      assert.throws(() => decodeAll(fromHex(hex), 'v', (r) => r.varint('n')), re, hex)
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (n) => {
        // Every value written in a wider form than needed is refused.
        const wide = new Writer().u8(0xfe).u32(n).finish()
        assert.throws(() => decodeAll(wide, 'v', (r) => r.varint('n')), /non-minimal/)
      })
    )
  })

  it('refuses lengths over their limit before allocating', () => {
    // Declares 2^40 bytes: refused from the prefix alone.
    const huge = new Writer()
      .u8(0xff)
      .u64(1n << 40n)
      .finish()
    assert.throws(
      () => decodeAll(huge, 'msg', (r) => r.bytes('payload', 1024)),
      /^DecodeError: msg: payload: length 1099511627776 exceeds limit 1024$/
    )
    const over = new Writer().bytes(new Uint8Array(11), 20).finish()
    assert.throws(
      () => decodeAll(over, 'msg', (r) => r.bytes('payload', 10)),
      /msg: payload: length 11 exceeds limit 10/
    )
    const overStr = new Writer().string('hello world', 20).finish()
    assert.throws(() => decodeAll(overStr, 'msg', (r) => r.string('name', 5)), /msg: name: length 11 exceeds limit 5/)
    const count = new Writer().varint(1_000_000).finish()
    assert.throws(
      () => decodeAll(count, 'msg', (r) => r.array('items', 100, (r) => r.u8('x'))),
      /msg: items: count 1000000 exceeds limit 100/
    )
    const plausible = new Writer().varint(50).u8(1).finish()
    assert.throws(
      () => decodeAll(plausible, 'msg', (r) => r.array('items', 100, (r) => r.bytes32('x'), 32)),
      /msg: items: count 50 needs at least 1600 bytes, got 1/
    )
  })

  it('refuses lengths over their limit on the encoding side too', () => {
    assert.throws(
      () => new Writer().bytes(new Uint8Array(11), 10, 'payload'),
      (e: unknown) => e instanceof EncodeError && /payload: length 11 exceeds limit 10/.test(e.message)
    )
    assert.throws(() => new Writer().array([1, 2, 3], 2, (w, x) => w.u8(x), 'items'), /items: count 3 exceeds limit 2/)
    assert.throws(() => new Writer().u8(256, 'flag'), /flag: not a u8: 256/)
    assert.throws(() => new Writer().u64(-1n, 'value'), /value: not a u64/)
    assert.throws(() => new Writer().bytes32(new Uint8Array(31), 'key'), /key: expected 32 bytes, got 31/)
  })

  it('names the full field path in errors', () => {
    const w = new Writer().u8(1)
    w.array([new Uint8Array(64), new Uint8Array(64), new Uint8Array(11)], 10, (w, s) => w.raw(s))
    const bytes = w.finish()
    assert.throws(
      () =>
        decodeAll(bytes, 'partition statement', (r) => {
          r.u8('version')
          return r.array('signatures', 10, (r) => r.bytes64(''), 1)
        }),
      (e: unknown) =>
        e instanceof DecodeError &&
        e.message === 'partition statement: signatures[2]: expected 64 bytes, got 11' &&
        e.path === 'partition statement: signatures[2]'
    )
    const nested = new Writer().u8(7).finish()
    assert.throws(
      () =>
        decodeAll(nested, 'tx', (r) =>
          r.field('outputs', (r) => r.repeat('entry', 2, (r) => r.field('value', (r) => r.u32('sats'))))
        ),
      /^DecodeError: tx: outputs: entry\[0\]: value: sats: expected 4 bytes, got 1$/
    )
  })

  it('rejects trailing bytes', () => {
    const bytes = new Writer().u32(5).u8(0).finish()
    assert.throws(() => decodeAll(bytes, 'msg', (r) => r.u32('n')), /msg: 1 trailing bytes after offset 4/)
  })

  it('decodes strings strictly and losslessly', () => {
    // invalid UTF-8
    const bad = new Writer()
      .varint(2)
      .raw(new Uint8Array([0xc3, 0x28]))
      .finish()
    assert.throws(() => decodeAll(bad, 'msg', (r) => r.string('peerId', 10)), /msg: peerId: invalid UTF-8/)
    // overlong encoding of '/'
    const overlong = new Writer()
      .varint(2)
      .raw(new Uint8Array([0xc0, 0xaf]))
      .finish()
    assert.throws(() => decodeAll(overlong, 'msg', (r) => r.string('s', 10)), /invalid UTF-8/)
    // A leading BOM is kept as data, so the string re-encodes to the same bytes.
    const bom = new Writer().string('\uFEFFa', 10).finish()
    const s = decodeAll(bom, 'msg', (r) => r.string('s', 10))
    assert.equal(s, '\uFEFFa')
    assert.deepStrictEqual(new Writer().string(s, 10).finish(), bom)
    assert.throws(() => new Writer().string('a\uD800b', 10, 'name'), /name: string is not well-formed Unicode/)
  })

  it('accepts a Buffer and returns plain Uint8Arrays', () => {
    const bytes = new Writer()
      .bytes32(new Uint8Array(32).fill(9))
      .bytes(new Uint8Array([1, 2, 3]), 10)
      .finish()
    const buf = Buffer.concat([Buffer.from([0xee]), Buffer.from(bytes)]).subarray(1)
    const [a, b] = decodeAll(buf, 'msg', (r) => [r.bytes32('a'), r.bytes('b', 10)])
    assert.equal(Object.getPrototypeOf(a), Uint8Array.prototype)
    assert.deepStrictEqual(a, new Uint8Array(32).fill(9))
    assert.deepStrictEqual(b, new Uint8Array([1, 2, 3]))
  })

  it('writes big-endian keys that sort numerically', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (a, b) => {
          const ea = new Writer().u64be(a).finish()
          const eb = new Writer().u64be(b).finish()
          const cmp = Buffer.compare(ea, eb)
          assert.equal(Math.sign(cmp), a < b ? -1 : a > b ? 1 : 0)
          assert.equal(
            decodeAll(ea, 'k', (r) => r.u64be('i')),
            a
          )
        }
      )
    )
  })
})
