import { availableParallelism } from 'node:os'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { SignatureCache } from '../../board/signature-cache.js'
import { NATIVE_BIP340_FLAG, NATIVE_BIP340_MODULE } from '../../protocol/bip340.js'
import { bip340Backend } from '../../protocol/keys.js'
import type { SignatureCheck } from '../../board/signatures.js'
import type { Logger } from '../host/log.js'

/** Signatures sent to a worker in one message at most. */
const MAX_BATCH_CHECKS = 256
/** Checks waiting for a worker at most; beyond it, the rest are left to the board to verify itself. */
const MAX_QUEUED_CHECKS = 65_536

/** With libsecp256k1, this many checks or fewer are verified on the calling thread (a few ms). */
const DEFAULT_INLINE_MAX_CHECKS = 64
/** Workers with nothing to do for this long are terminated (started again on demand). */
const DEFAULT_IDLE_STOP_MS = 30_000

interface Job {
  triples: Uint8Array
  checks: SignatureCheck[]
  resolve: () => void
}

export interface SignatureWorkersOptions {
  /** At most this many unknown checks are verified on the calling thread instead (0: never). */
  inlineMaxChecks?: number
  idleStopMs?: number
}

/**
 * Verifies signatures on worker threads ahead of the board applying them, and records the valid
 * ones in the node's signature cache: applying then finds them there. A check that fails here is
 * simply not remembered, so the board verifies it again and refuses the entry itself; nothing the
 * board decides depends on these workers, only how long the Raft thread is busy.
 *
 * Threads start on demand and stop after `idleStopMs` without work: an idle node keeps no second
 * V8 isolate (about 10 MiB of RSS). A handful of checks (a gossip share, a small statement) are
 * verified in one batch on the calling thread, which costs less than a round trip to a worker.
 */
export class SignatureWorkers {
  private readonly workers: Worker[] = []
  private readonly idle: Worker[] = []
  private readonly queue: Job[] = []
  private queuedChecks = 0
  private readonly running = new Map<Worker, Job>()
  private stopped = false
  /** A worker failed: none is started again (the board verifies what the workers cannot). */
  private broken = false
  private idleTimer: NodeJS.Timeout | undefined
  private readonly inlineMaxChecks: number
  private readonly idleStopMs: number

  constructor(
    private readonly cache: SignatureCache,
    private readonly logger: Logger,
    private readonly maxThreads = Math.max(1, Math.min(4, availableParallelism() - 1)),
    options: SignatureWorkersOptions = {}
  ) {
    this.inlineMaxChecks =
      options.inlineMaxChecks ?? (bip340Backend() === 'libsecp256k1' ? DEFAULT_INLINE_MAX_CHECKS : 0)
    this.idleStopMs = options.idleStopMs ?? DEFAULT_IDLE_STOP_MS
  }

  /** Worker threads at most (they start on demand). */
  get threads(): number {
    return this.maxThreads
  }

  /** Worker threads started now (0 while idle). */
  get startedThreads(): number {
    return this.workers.length
  }

  private startWorkers(): void {
    if (this.idleTimer !== undefined) {
      clearTimeout(this.idleTimer)
      this.idleTimer = undefined
    }
    while (!this.broken && this.workers.length < this.maxThreads) {
      const worker = startWorker()
      worker.on('message', (message: { valid: Uint8Array }) => {
        this.done(worker, message.valid)
      })
      worker.on('error', (err) => {
        this.logger.error({ err }, 'a signature verification worker failed')
        this.broken = true
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

  /** Terminates the workers once nothing is queued or running for `idleStopMs`. */
  private scheduleIdleStop(): void {
    if (
      this.stopped ||
      this.idleTimer !== undefined ||
      this.queue.length > 0 ||
      this.running.size > 0 ||
      this.workers.length === 0
    )
      return
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined
      if (this.queue.length > 0 || this.running.size > 0) return
      const workers = this.workers.splice(0)
      this.idle.splice(0)
      for (const w of workers) void w.terminate()
    }, this.idleStopMs)
    this.idleTimer.unref()
  }

  /** Verifies the checks the cache does not know yet; resolves when they are done (or skipped). */
  async prepare(checks: readonly SignatureCheck[]): Promise<void> {
    const unknown = checks.filter((c) => !this.cache.knows(c.signature, c.hash, c.key))
    if (unknown.length === 0 || this.stopped) return
    if (unknown.length <= this.inlineMaxChecks) {
      this.cache.prepare(unknown)
      return
    }
    this.startWorkers()
    if (this.workers.length === 0) return
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
      jobs.push(
        new Promise<void>((resolve) => {
          this.queue.push({ triples, checks: batch, resolve })
          this.queuedChecks += batch.length
        })
      )
    }
    this.pump()
    await Promise.all(jobs)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer)
    for (const job of this.queue.splice(0)) job.resolve()
    for (const job of this.running.values()) job.resolve()
    await Promise.all(this.workers.map(async (w) => await w.terminate()))
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!
      const job = this.queue.shift()!
      this.running.set(worker, job)
      worker.ref()
      worker.postMessage({ triples: job.triples })
    }
  }

  private done(worker: Worker, valid: Uint8Array | null): void {
    const job = this.running.get(worker)
    this.running.delete(worker)
    worker.unref()
    if (job !== undefined) {
      this.queuedChecks -= job.checks.length
      if (valid !== null)
        job.checks.forEach((c, i) => {
          if (valid[i] === 1) this.cache.remember(c.signature, c.hash, c.key)
        })
      job.resolve()
    }
    if (!this.stopped && this.workers.includes(worker)) {
      this.idle.push(worker)
      this.pump()
      this.scheduleIdleStop()
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
function startWorker(): Worker {
  const require = createRequire(import.meta.url)
  const noble = pathToFileURL(require.resolve('@noble/curves/secp256k1.js')).href
  let native: string | null = null
  try {
    native = require.resolve(NATIVE_BIP340_MODULE)
  } catch {
    /* not installed: noble */
  }
  return new Worker(
    `
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
    })`,
    { eval: true }
  )
}
