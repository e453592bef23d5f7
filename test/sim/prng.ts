// Seeded PRNG for the simulator: xoshiro128** seeded through splitmix32. Deterministic across
// platforms (32-bit integer arithmetic only).

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0
  let z = state.s
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number

  /** seed: any safe integer; high and low 32 bits both feed the state. */
  constructor(seed: number) {
    const st = { s: (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x1_0000_0000) | 0, 0x27d4eb2d) }
    this.a = splitmix32(st)
    this.b = splitmix32(st)
    this.c = splitmix32(st)
    this.d = splitmix32(st)
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1
  }

  /** Uniform 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return result
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n)
  }

  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  float(): number {
    return this.next() / 0x1_0000_0000
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from empty list')
    return items[this.int(items.length)]!
  }

  /** A new generator whose stream is independent of this one (consumes two draws). */
  fork(): Prng {
    return new Prng(this.next() * 0x10000 + (this.next() & 0xffff))
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}
