import { Agent, request } from 'node:http'
import { summarize, type Summary } from './lib.js'

/** One HTTP request a closed-loop client repeats: a fresh body each time. */
/** The options of the benchmarks that load clusters (board, compare-etcd): the same defaults, so their numbers compare. */
export const CLUSTER_LOAD_OPTIONS = {
  sizes: { type: 'string', default: '3,5' },
  clients: { type: 'string', default: '1,16,64' },
  'duration-s': { type: 'string', default: '10' },
  'value-bytes': { type: 'string', default: '256' },
  failovers: { type: 'string', default: '3' }
} as const

export interface Target {
  host: string
  port: number
  path: string
  headers: Record<string, string>
  body: () => string
}

export interface LoadResult {
  clients: number
  durationS: number
  ok: number
  errors: number
  throughputPerS: number
  latencyMs: Summary
}

/**
 * Closed-loop load: `clients` workers each send a request, wait for the answer, and send the next,
 * for `durationMs`. Every worker keeps its own keep-alive connection. Only 2xx answers count.
 */
export async function closedLoop(target: Target, clients: number, durationMs: number): Promise<LoadResult> {
  return await closedLoopEach(() => target, clients, durationMs)
}

/**
 * `closedLoop` where each request comes from `next(client)` (client numbers 0..clients-1) and its
 * status goes to `answered(client, status)` before that client sends again: for loads whose next
 * request depends on how the previous one went, such as chains of board entries that must commit
 * in order. A client stops early when `next` returns `undefined`.
 */
export async function closedLoopEach(
  next: (client: number) => Target | undefined,
  clients: number,
  durationMs: number,
  answered?: (client: number, status: number) => void
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients })
  const latencies: number[] = []
  let errors = 0
  const startMs = performance.now()
  const endMs = startMs + durationMs
  const worker = async (client: number): Promise<void> => {
    while (performance.now() < endMs) {
      const target = next(client)
      if (target === undefined) return
      const body = target.body()
      const t0 = performance.now()
      const status = await post(target, agent, body)
      if (status >= 200 && status < 300) latencies.push(performance.now() - t0)
      else errors++
      answered?.(client, status)
    }
  }
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      await worker(client)
    })
  )
  const elapsedS = (performance.now() - startMs) / 1000
  agent.destroy()
  return {
    clients,
    durationS: elapsedS,
    ok: latencies.length,
    errors,
    throughputPerS: latencies.length / elapsedS,
    latencyMs: summarize(latencies)
  }
}

/** One POST of `body` (a fresh `target.body()` by default); resolves with the status code (0 on a network error). */
export async function post(target: Target, agent?: Agent, body = target.body()): Promise<number> {
  return await new Promise((resolve) => {
    const req = request(
      {
        host: target.host,
        port: target.port,
        path: target.path,
        method: 'POST',
        agent,
        headers: { ...target.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
      },
      (res) => {
        res.resume()
        res.on('end', () => {
          resolve(res.statusCode ?? 0)
        })
        res.on('error', () => {
          resolve(0)
        })
      }
    )
    req.on('error', () => {
      resolve(0)
    })
    req.setTimeout(15_000, () => {
      req.destroy()
    })
    req.end(body)
  })
}

/** A payload of `bytes` random-looking bytes, base64, different every call. */
export function payloadMaker(bytes: number): () => Buffer {
  let n = 0
  const base = Buffer.alloc(bytes, 0x61)
  return () => {
    const out = Buffer.from(base)
    out.writeUInt32BE(n++ >>> 0, 0)
    out.writeUInt32BE(process.pid >>> 0, 4)
    return out
  }
}
