/**
 * The canonical binary codec: a growable `Writer` and a strict `Reader`.
 *
 * Conventions (shared by every object in protocol/ and by any other layer that uses this codec):
 *
 * - Fixed-width integers are little-endian (`u8`, `u16`, `u32`, `u64`), as in Bitcoin. `u32be` and
 *   `u64be` exist for keys that must sort byte-wise (storage); they are not used by pool objects.
 * - `u64` values are `bigint`s; `u53` is a `u64` on the wire that must fit a JavaScript safe integer.
 * - Lengths and counts are Bitcoin "CompactSize" varints: `< 0xfd` in one byte, then `0xfd`+u16,
 *   `0xfe`+u32, `0xff`+u64. The reader rejects non-minimal forms and values above
 *   `Number.MAX_SAFE_INTEGER`, so every value has exactly one encoding.
 * - Variable-length byte strings and UTF-8 strings are a varint length followed by the bytes; every
 *   one has a maximum length, checked before anything is allocated. Strings must be well-formed
 *   UTF-8 (no lone surrogates, byte order marks are kept as data) so they re-encode identically.
 * - Arrays are a varint count followed by the elements; every array has a maximum count, and the
 *   reader also refuses a count that the remaining input cannot possibly hold.
 * - A message is decoded completely: `Reader.end()` rejects trailing bytes.
 *
 * Every `Reader` method takes the name of the field it reads. On failure it throws a `DecodeError`
 * whose message is the path of the field, e.g.
 * `partition statement: signatures[2]: signature: expected 64 bytes, got 11`.
 * Reading does no per-byte allocation: fixed fields are copied with one `slice`, arrays are
 * allocated once their count has been checked, and the field path is only turned into a string
 * when an error is thrown.
 */

/** Thrown by `Reader` (and the object decoders built on it) on any malformed input. */
export class DecodeError extends Error {
  /** The field path, e.g. `genesis: members[3]: peerId`. */
  readonly path: string
  /** What was wrong with that field, e.g. `expected 32 bytes, got 7`. */
  readonly reason: string
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`)
    this.name = 'DecodeError'
    this.path = path
    this.reason = reason
  }
}

/** Thrown by `Writer` (and the object encoders) when asked to encode an invalid value. */
export class EncodeError extends Error {
  /** The field path, e.g. `inputs[2].txid`. */
  readonly field: string
  readonly reason: string
  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`)
    this.name = 'EncodeError'
    this.field = field
    this.reason = reason
  }
}

/** Re-throw `e` with `prefix` prepended to its field path if it is an `EncodeError`. */
function prefixed(e: unknown, prefix: string): unknown {
  if (!(e instanceof EncodeError)) return e
  const sep = e.field.startsWith('[') ? '' : '.'
  return new EncodeError(e.field === '' ? prefix : `${prefix}${sep}${e.field}`, e.reason)
}

const MAX_U32 = 0xffff_ffff
const MAX_U64 = (1n << 64n) - 1n
const utf8Encoder = new TextEncoder()
// fatal: reject invalid UTF-8; ignoreBOM: keep a leading U+FEFF as data so decoding is lossless.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false
  return true
}

function isAsciiBytes(buf: Uint8Array, at: number, len: number): boolean {
  for (let i = at; i < at + len; i++) if (buf[i]! > 0x7f) return false
  return true
}

/** Number of bytes the CompactSize varint encoding of `n` takes. */
export function varintSize(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : n <= MAX_U32 ? 5 : 9
}

/**
 * A growable output buffer. Methods append and return `this`, so writes can be chained.
 * The optional `field` argument names the field in the `EncodeError` thrown for out-of-range input.
 */
export class Writer {
  private buf: Uint8Array
  // Made on the first fixed-width write: a view of a small buffer moves it off the V8 heap, which
  // costs more than the writes of a short message (most are varints and bytes).
  private dataView: DataView | null = null
  private pos = 0

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity))
  }

  private get view(): DataView {
    this.dataView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
    return this.dataView
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos
  }

  private ensure(extra: number): void {
    const need = this.pos + extra
    if (need <= this.buf.length) return
    let cap = this.buf.length * 2
    while (cap < need) cap *= 2
    const next = new Uint8Array(cap)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.dataView = null
  }

  u8(v: number, field = 'u8'): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new EncodeError(field, `not a u8: ${v}`)
    this.ensure(1)
    this.buf[this.pos++] = v
    return this
  }

  u16(v: number, field = 'u16'): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new EncodeError(field, `not a u16: ${v}`)
    this.ensure(2)
    this.view.setUint16(this.pos, v, true)
    this.pos += 2
    return this
  }

  u32(v: number, field = 'u32'): this {
    if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw new EncodeError(field, `not a u32: ${v}`)
    this.ensure(4)
    this.view.setUint32(this.pos, v, true)
    this.pos += 4
    return this
  }

  /** Big-endian u32 (for byte-wise sortable keys). */
  u32be(v: number, field = 'u32'): this {
    if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw new EncodeError(field, `not a u32: ${v}`)
    this.ensure(4)
    this.view.setUint32(this.pos, v, false)
    this.pos += 4
    return this
  }

  u64(v: bigint, field = 'u64'): this {
    if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw new EncodeError(field, `not a u64: ${String(v)}`)
    this.ensure(8)
    this.view.setBigUint64(this.pos, v, true)
    this.pos += 8
    return this
  }

  /** Big-endian u64 (for byte-wise sortable keys). */
  u64be(v: bigint, field = 'u64'): this {
    if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw new EncodeError(field, `not a u64: ${String(v)}`)
    this.ensure(8)
    this.view.setBigUint64(this.pos, v, false)
    this.pos += 8
    return this
  }

  /** A `u64` on the wire holding a non-negative safe integer. */
  u53(v: number, field = 'u53'): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new EncodeError(field, `not a non-negative safe integer: ${v}`)
    return this.u64(BigInt(v), field)
  }

  /** CompactSize varint (minimal form). */
  varint(n: number, field = 'varint'): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new EncodeError(field, `not a varint: ${n}`)
    if (n < 0xfd) return this.u8(n)
    this.ensure(9)
    if (n <= 0xffff) {
      this.buf[this.pos++] = 0xfd
      this.view.setUint16(this.pos, n, true)
      this.pos += 2
    } else if (n <= MAX_U32) {
      this.buf[this.pos++] = 0xfe
      this.view.setUint32(this.pos, n, true)
      this.pos += 4
    } else {
      this.buf[this.pos++] = 0xff
      this.view.setBigUint64(this.pos, BigInt(n), true)
      this.pos += 8
    }
    return this
  }

  /** Exactly `len` bytes, no length prefix. */
  fixed(bytes: Uint8Array, len: number, field = 'bytes'): this {
    if (!(bytes instanceof Uint8Array) || bytes.length !== len) {
      throw new EncodeError(
        field,
        `expected ${len} bytes, got ${bytes instanceof Uint8Array ? bytes.length : typeof bytes}`
      )
    }
    return this.raw(bytes)
  }

  bytes32(bytes: Uint8Array, field = 'bytes32'): this {
    return this.fixed(bytes, 32, field)
  }

  bytes64(bytes: Uint8Array, field = 'bytes64'): this {
    return this.fixed(bytes, 64, field)
  }

  /** Append bytes verbatim (no prefix, no check): for splicing in an already-encoded part. */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
    return this
  }

  /** Varint length + bytes; `maxLen` is enforced. */
  bytes(bytes: Uint8Array, maxLen: number, field = 'bytes'): this {
    if (!(bytes instanceof Uint8Array)) throw new EncodeError(field, 'not a Uint8Array')
    if (bytes.length > maxLen) throw new EncodeError(field, `length ${bytes.length} exceeds limit ${maxLen}`)
    this.varint(bytes.length)
    return this.raw(bytes)
  }

  /** Varint byte length + UTF-8; `maxBytes` is the limit on the encoded length. */
  string(s: string, maxBytes: number, field = 'string'): this {
    if (typeof s !== 'string') throw new EncodeError(field, 'not a string')
    if (s.length < 0xfd && s.length <= maxBytes && isAscii(s)) {
      // ASCII (node ids, names): one byte per character, no surrogates; same bytes as the encoder's.
      this.ensure(1 + s.length)
      this.buf[this.pos++] = s.length
      for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i)
      return this
    }
    if (LONE_SURROGATE.test(s)) throw new EncodeError(field, 'string is not well-formed Unicode (lone surrogate)')
    const enc = utf8Encoder.encode(s)
    if (enc.length > maxBytes) throw new EncodeError(field, `length ${enc.length} bytes exceeds limit ${maxBytes}`)
    this.varint(enc.length)
    return this.raw(enc)
  }

  /** Varint count, checked against `maxCount`. */
  count(n: number, maxCount: number, field = 'count'): this {
    if (n > maxCount) throw new EncodeError(field, `count ${n} exceeds limit ${maxCount}`)
    return this.varint(n, field)
  }

  /**
   * Varint count + each element written by `writeOne`. An `EncodeError` thrown for an element is
   * re-thrown with its field under `field[i]` (names are only built when an error is thrown).
   */
  array<T>(
    items: readonly T[],
    maxCount: number,
    writeOne: (w: this, item: T, index: number) => void,
    field = 'array'
  ): this {
    this.count(items.length, maxCount, field)
    return this.each(items, writeOne, field)
  }

  /** Each element written by `writeOne`, no count (the count is known from elsewhere). */
  each<T>(items: readonly T[], writeOne: (w: this, item: T, index: number) => void, field = 'array'): this {
    let i = 0
    try {
      for (; i < items.length; i++) writeOne(this, items[i]!, i)
    } catch (e) {
      throw prefixed(e, `${field}[${i}]`)
    }
    return this
  }

  /** Write a nested structure; an `EncodeError` inside `fn` is re-thrown under `field`. */
  field(field: string, fn: (w: this) => void): this {
    try {
      fn(this)
    } catch (e) {
      throw prefixed(e, field)
    }
    return this
  }

  /** A new plain `Uint8Array` holding exactly the bytes written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos)
  }

  /** A view of the bytes written (no copy; invalidated by further writes). */
  subarray(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

/**
 * A strict reader over one complete message. Construct it with a context (the object name used as
 * the first element of error paths), read every field by name, then call `end()`.
 * A reader that has thrown is not meant to be used again.
 */
export class Reader {
  private readonly buf: Uint8Array
  // Made on the first fixed-width read (see Writer: a view moves a small buffer off the V8 heap).
  private dataView: DataView | null = null
  private pos = 0
  private readonly context: string
  // The current field path, kept as parallel stacks so that no string is built unless an error
  // is thrown: names[i] is a segment, indices[i] its array index or -1.
  private readonly names: string[] = []
  private readonly indices: number[] = []

  constructor(bytes: Uint8Array, context: string) {
    if (!(bytes instanceof Uint8Array)) throw new DecodeError(context, 'input is not a byte array')
    // Normalise a Buffer (or any view) to a plain Uint8Array view over the same memory.
    this.buf =
      bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.context = context
  }

  private get dv(): DataView {
    this.dataView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
    return this.dataView
  }

  /** Current read position. */
  get offset(): number {
    return this.pos
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.buf.length - this.pos
  }

  /** The path of `name` under the current nesting, e.g. `genesis: members[2]: peerId`. */
  pathOf(name?: string): string {
    let p = this.context
    for (let i = 0; i < this.names.length; i++) {
      const idx = this.indices[i]!
      if (this.names[i] === '' && idx < 0) continue // an unnamed nesting level
      p += `: ${this.names[i]}`
      if (idx >= 0) p += `[${idx}]`
    }
    if (name !== undefined && name !== '') p += `: ${name}`
    return p
  }

  /** Throw a `DecodeError` for field `name` (relative to the current nesting). */
  fail(name: string, reason: string): never {
    throw new DecodeError(this.pathOf(name), reason)
  }

  /** Throw unless `cond`. */
  check(cond: boolean, name: string, reason: string | (() => string)): void {
    if (!cond) this.fail(name, typeof reason === 'string' ? reason : reason())
  }

  private need(n: number, name: string): void {
    if (this.buf.length - this.pos < n) this.fail(name, `expected ${n} bytes, got ${this.buf.length - this.pos}`)
  }

  u8(name: string): number {
    this.need(1, name)
    return this.buf[this.pos++]!
  }

  u16(name: string): number {
    this.need(2, name)
    const v = this.dv.getUint16(this.pos, true)
    this.pos += 2
    return v
  }

  u32(name: string): number {
    this.need(4, name)
    const v = this.dv.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  u32be(name: string): number {
    this.need(4, name)
    const v = this.dv.getUint32(this.pos, false)
    this.pos += 4
    return v
  }

  u64(name: string): bigint {
    this.need(8, name)
    const v = this.dv.getBigUint64(this.pos, true)
    this.pos += 8
    return v
  }

  u64be(name: string): bigint {
    this.need(8, name)
    const v = this.dv.getBigUint64(this.pos, false)
    this.pos += 8
    return v
  }

  /** A `u64` that must be a safe integer. */
  u53(name: string): number {
    const v = this.u64(name)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(name, `value ${v} exceeds ${Number.MAX_SAFE_INTEGER}`)
    return Number(v)
  }

  /** A version byte that must be one of `supported`. */
  version(supported: readonly number[], name = 'version'): number {
    const v = this.u8(name)
    if (!supported.includes(v)) this.fail(name, `unsupported version ${v} (supported: ${supported.join(', ')})`)
    return v
  }

  /** CompactSize varint; rejects non-minimal encodings and values above `max` (default: safe integers). */
  varint(name: string, max = Number.MAX_SAFE_INTEGER): number {
    const first = this.u8(name)
    let v: number
    if (first < 0xfd) {
      v = first
    } else if (first === 0xfd) {
      this.need(2, name)
      v = this.dv.getUint16(this.pos, true)
      this.pos += 2
      if (v < 0xfd) this.fail(name, `non-minimal varint (${v} in 3 bytes)`)
    } else if (first === 0xfe) {
      this.need(4, name)
      v = this.dv.getUint32(this.pos, true)
      this.pos += 4
      if (v <= 0xffff) this.fail(name, `non-minimal varint (${v} in 5 bytes)`)
    } else {
      this.need(8, name)
      const b = this.dv.getBigUint64(this.pos, true)
      this.pos += 8
      if (b <= BigInt(MAX_U32)) this.fail(name, `non-minimal varint (${b} in 9 bytes)`)
      if (b > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(name, `varint ${b} exceeds ${Number.MAX_SAFE_INTEGER}`)
      v = Number(b)
    }
    if (v > max) this.fail(name, `${v} exceeds limit ${max}`)
    return v
  }

  /** Exactly `len` bytes, copied into a new plain `Uint8Array`. */
  fixed(name: string, len: number): Uint8Array {
    this.need(len, name)
    const out = this.buf.slice(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  bytes32(name: string): Uint8Array {
    return this.fixed(name, 32)
  }

  bytes64(name: string): Uint8Array {
    return this.fixed(name, 64)
  }

  /** Varint length (≤ `maxLen`, checked before allocating) + bytes, copied. */
  bytes(name: string, maxLen: number): Uint8Array {
    const len = this.lengthPrefix(name, maxLen)
    const out = this.buf.slice(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  /** Like `bytes` but returns a view into the input (no copy): valid only while the input is. */
  bytesView(name: string, maxLen: number): Uint8Array {
    const len = this.lengthPrefix(name, maxLen)
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  /** Varint byte length (≤ `maxBytes`) + well-formed UTF-8. */
  string(name: string, maxBytes: number): string {
    const len = this.lengthPrefix(name, maxBytes)
    let s: string
    if (len <= 64 && isAsciiBytes(this.buf, this.pos, len)) {
      // ASCII (node ids, names): what the decoder returns, without its call.
      s = ''
      for (let i = this.pos; i < this.pos + len; i++) s += String.fromCharCode(this.buf[i]!)
      this.pos += len
      return s
    }
    try {
      s = utf8Decoder.decode(this.buf.subarray(this.pos, this.pos + len))
    } catch {
      this.fail(name, 'invalid UTF-8')
    }
    this.pos += len
    return s
  }

  private lengthPrefix(name: string, maxLen: number): number {
    const len = this.varint(name)
    if (len > maxLen) this.fail(name, `length ${len} exceeds limit ${maxLen}`)
    this.need(len, name)
    return len
  }

  /**
   * A varint element count, ≤ `maxCount`, and no more than the remaining input could hold at
   * `minElementBytes` per element (so a forged count never causes a large allocation).
   */
  count(name: string, maxCount: number, minElementBytes = 1): number {
    const n = this.varint(name)
    if (n > maxCount) this.fail(name, `count ${n} exceeds limit ${maxCount}`)
    if (minElementBytes > 0 && n * minElementBytes > this.remaining) {
      this.fail(name, `count ${n} needs at least ${n * minElementBytes} bytes, got ${this.remaining}`)
    }
    return n
  }

  /**
   * A counted array. Inside `readOne`, field names are reported under `name[i]`.
   * `minElementBytes` is the smallest possible encoded element, used to refuse impossible counts.
   */
  array<T>(name: string, maxCount: number, readOne: (r: this, index: number) => T, minElementBytes = 1): T[] {
    const n = this.count(name, maxCount, minElementBytes)
    return this.repeat(name, n, readOne)
  }

  /** `n` elements without a count prefix (the count is known from elsewhere), reported under `name[i]`. */
  repeat<T>(name: string, n: number, readOne: (r: this, index: number) => T): T[] {
    const out = new Array<T>(n)
    this.names.push(name)
    this.indices.push(0)
    const top = this.indices.length - 1
    for (let i = 0; i < n; i++) {
      this.indices[top] = i
      out[i] = readOne(this, i)
    }
    this.names.pop()
    this.indices.pop()
    return out
  }

  /** Read a nested structure; fields read inside `fn` are reported under `name`. */
  field<T>(name: string, fn: (r: this) => T): T {
    this.names.push(name)
    this.indices.push(-1)
    const v = fn(this)
    this.names.pop()
    this.indices.pop()
    return v
  }

  /** Require that the whole input has been consumed. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new DecodeError(this.context, `${this.buf.length - this.pos} trailing bytes after offset ${this.pos}`)
    }
  }
}

/**
 * Decode `bytes` completely with `read` (which reads one object), using `context` as the first
 * element of error paths, and reject trailing bytes.
 */
export function decodeAll<T>(bytes: Uint8Array, context: string, read: (r: Reader) => T): T {
  const r = new Reader(bytes, context)
  const v = read(r)
  r.end()
  return v
}
