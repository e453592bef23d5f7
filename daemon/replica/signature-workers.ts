import { availableParallelism } from 'node:os'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { SignatureCache } from '../../board/signature-cache.js'
import { NATIVE_BIP340_FLAG, NATIVE_BIP340_MODULE } from '../../protocol/bip340.js'
import type { SignatureCheck } from '../../board/signatures.js'
import type { Logger } from '../host/log.js'

/** Signatures sent to a worker in one message at most. */
const MAX_BATCH_CHECKS = 256
/** Checks waiting for a worker at most; beyond it, the rest are left to the board to verify itself. */
const MAX_QUEUED_CHECKS = 65_536

interface Job { triples: Uint8Array, checks: SignatureCheck[], resolve: () => void }

/**
 * Verifies signatures on worker threads ahead of the board applying them, and records the valid
 * ones in the node's signature cache: applying then finds them there. A check that fails here is
 * simply not remembered, so the board verifies it again and refuses the entry itself; nothing the
 * board decides depends on these workers, only how long the Raft thread is busy.
 */
export class SignatureWorkers {
  private readonly workers: Worker[] = []
  private readonly idle: Worker[] = []
  private readonly queue: Job[] = []
  private queuedChecks = 0
  private readonly running = new Map<Worker, Job>()
  private stopped = false

  constructor (private readonly cache: SignatureCache, private readonly logger: Logger, threads = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    for (let i = 0; i < threads; i++) {
      const worker = startWorker()
      worker.on('message', (message: { valid: Uint8Array }) => { this.done(worker, message.valid) })
      worker.on('error', (err) => {
        // A dead worker is not replaced: the board verifies what the workers cannot, on its own thread.
        this.logger.error({ err }, 'a signature verification worker failed')
        this.done(worker, null)
        this.idle.splice(this.idle.indexOf(worker) >>> 0, 1)
        this.workers.splice(this.workers.indexOf(worker) >>> 0, 1)
        if (this.workers.length === 0) void this.stop()
      })
      worker.unref()
      this.workers.push(worker)
      this.idle.push(worker)
    }
  }

  /** Worker threads running. */
  get threads (): number {
    return this.workers.length
  }

  /** Verifies the checks the cache does not know yet; resolves when they are done (or skipped). */
  async prepare (checks: readonly SignatureCheck[]): Promise<void> {
    const unknown = checks.filter((c) => !this.cache.knows(c.signature, c.hash, c.key))
    if (unknown.length === 0 || this.stopped) return
    const jobs: Array<Promise<void>> = []
    for (let i = 0; i < unknown.length; i += MAX_BATCH_CHECKS) {
      const batch = unknown.slice(i, i + MAX_BATCH_CHECKS)
      if (this.queuedChecks + batch.length > MAX_QUEUED_CHECKS) break
      const triples = new Uint8Array(batch.length * 128)
      batch.forEach((c, k) => {
        triples.set(c.hash, k * 128)
        triples.set(c.key, k * 128 + 32)
        triples.set(c.signature, k * 128 + 64)
      })
      jobs.push(new Promise<void>((resolve) => {
        this.queue.push({ triples, checks: batch, resolve })
        this.queuedChecks += batch.length
      }))
    }
    this.pump()
    await Promise.all(jobs)
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const job of this.queue.splice(0)) job.resolve()
    for (const job of this.running.values()) job.resolve()
    await Promise.all(this.workers.map(async (w) => await w.terminate()))
  }

  private pump (): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!
      const job = this.queue.shift()!
      this.running.set(worker, job)
      worker.ref()
      worker.postMessage({ triples: job.triples })
    }
  }

  private done (worker: Worker, valid: Uint8Array | null): void {
    const job = this.running.get(worker)
    this.running.delete(worker)
    worker.unref()
    if (job !== undefined) {
      this.queuedChecks -= job.checks.length
      if (valid !== null) job.checks.forEach((c, i) => { if (valid[i] === 1) this.cache.remember(c.signature, c.hash, c.key) })
      job.resolve()
    }
    if (!this.stopped) {
      this.idle.push(worker)
      this.pump()
    }
  }
}

/**
 * A verification worker: checks batches of BIP340 signatures off the node's main thread, with the
 * implementation protocol/bip340.ts picks (the libsecp256k1 binding when it loads, else noble; the
 * same answers). A batch is first verified as one (libsecp256k1's batch verification, about twice
 * as fast per signature); only if that fails is each signature checked alone, to find the bad ones.
 * Request: n × 128 bytes (hash 32 ‖ key 32 ‖ signature 64); answer: n bytes, 1 = valid. It is plain
 * JavaScript evaluated in the worker, so the same code runs from the build and from the TypeScript
 * sources (tests).
 */
function startWorker (): Worker {
  const require = createRequire(import.meta.url)
  const noble = pathToFileURL(require.resolve('@noble/curves/secp256k1.js')).href
  let native: string | null = null
  try { native = require.resolve(NATIVE_BIP340_MODULE) } catch { /* not installed: noble */ }
  return new Worker(`
    const { parentPort } = require('node:worker_threads')
    function loadNative () {
      try {
        const lib = ${native === null ? 'null' : `require(${JSON.stringify(native)})`}
        return lib !== null && lib.native === ${NATIVE_BIP340_FLAG} ? lib : null
      } catch { return null }
    }
    const lib = loadNative()
    import(${JSON.stringify(noble)}).then(({ schnorr }) => {
      const one = lib !== null
        ? (sig, hash, key) => lib.verify(hash, sig, key)
        : (sig, hash, key) => schnorr.verify(sig, hash, key)
      parentPort.on('message', ({ triples }) => {
        const n = triples.length / 128
        const bytes = Buffer.from(triples.buffer, triples.byteOffset, triples.byteLength)
        const at = (i, from, to) => bytes.subarray(i * 128 + from, i * 128 + to)
        const valid = new Uint8Array(n)
        let all = false
        if (lib !== null && n > 1) {
          const batch = []
          for (let i = 0; i < n; i++) batch.push([at(i, 0, 32), at(i, 64, 128), at(i, 32, 64)])
          try { all = lib.verifyBatch(batch) } catch { all = false }
        }
        if (all) valid.fill(1)
        else {
          for (let i = 0; i < n; i++) {
            try { valid[i] = one(at(i, 64, 128), at(i, 0, 32), at(i, 32, 64)) ? 1 : 0 } catch { valid[i] = 0 }
          }
        }
        parentPort.postMessage({ valid }, [valid.buffer])
      })
    })`, { eval: true })
}
