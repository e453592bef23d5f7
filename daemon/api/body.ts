import { ApiError } from './server.js'

// Checks of the JSON bodies the routes take: each names the field that is wrong.

export function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ApiError(400, 'bad-request', 'expected a JSON object')
  return body as Record<string, unknown>
}

export function text(v: unknown, name: string): string {
  if (typeof v !== 'string' || v.trim() === '')
    throw new ApiError(400, 'bad-request', `${name}: expected a member name`)
  return v
}

export function names(v: unknown, name: string): string[] {
  const list = typeof v === 'string' ? v.split(',') : v
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    list.length > 256 ||
    !list.every((x) => typeof x === 'string' && x.trim() !== '')
  ) {
    throw new ApiError(400, 'bad-request', `${name}: expected a list of member names`)
  }
  return list.map((x: string) => x.trim())
}

export function integer(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v))
    throw new ApiError(400, 'bad-request', `${name}: expected a whole number, got ${JSON.stringify(v)}`)
  return v
}

export function optionalInteger(v: unknown, name: string): number | undefined {
  return v === undefined ? undefined : integer(v, name)
}

export function sats(v: unknown, name: string, allowZero = false): bigint {
  const ok = (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && /^\d{1,16}$/.test(v))
  if (!ok) throw new ApiError(400, 'bad-request', `${name}: expected a whole number of sats, got ${JSON.stringify(v)}`)
  const n = BigInt(v as number | string)
  if (n < (allowZero ? 0n : 1n))
    throw new ApiError(
      400,
      'bad-request',
      `${name}: expected ${allowZero ? 'at least 0' : 'a positive number of'} sats, got ${n}`
    )
  return n
}

export function payments(v: unknown): Array<{ to: string; amountSats: bigint }> {
  if (v === undefined) return []
  if (!Array.isArray(v) || v.length > 256)
    throw new ApiError(400, 'bad-request', 'pay: expected a list of {"to","amountSats"}')
  return v.map((p: unknown, i) => {
    const o = object(p)
    return { to: text(o.to, `pay[${i}].to`), amountSats: sats(o.amountSats, `pay[${i}].amountSats`) }
  })
}
