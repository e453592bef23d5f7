/**
 * Small byte helpers shared by the protocol modules. Every function here is pure and works on plain
 * `Uint8Array`s (a Node `Buffer` is accepted as input; outputs are always plain `Uint8Array`s so that
 * `deepStrictEqual` comparisons behave).
 */

const HEX = '0123456789abcdef'

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    out += HEX[b >> 4]! + HEX[b & 15]!
  }
  return out
}

/** Parse lower- or upper-case hex; throws `RangeError` on odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0) throw new RangeError(`hex: odd length ${hex.length}`)
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) {
    const hi = hexNibble(hex.charCodeAt(2 * i))
    const lo = hexNibble(hex.charCodeAt(2 * i + 1))
    if (hi < 0 || lo < 0) throw new RangeError(`hex: invalid character near position ${2 * i}`)
    out[i] = (hi << 4) | lo
  }
  return out
}

function hexNibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** Byte-wise equality. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Lexicographic comparison (shorter prefix sorts first): negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** Concatenate into one new plain `Uint8Array`. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** A plain `Uint8Array` copy of `bytes` (also turns a `Buffer` into a plain array). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes)
}

/** Reversed copy: Bitcoin displays txids in the reverse of their internal byte order. */
export function reverseBytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length)
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[bytes.length - 1 - i]!
  return out
}
