// Runs many seeds, in this thread or spread over worker threads, and reports.

import { Worker } from 'node:worker_threads'
import type { PlantedBug } from './bugs.js'
import type { ByzantineKind } from './byzantine.js'
import type { NodeBug } from './node-bugs.js'
import { runNodeSimulation, type ByzantineProperty } from './node-sim.js'
import { runSimulation, type SimResult } from './sim.js'

/** 'node': the whole node (driver, store, wire codec; node-sim.ts); 'core': the Raft core alone (sim.ts). */
export type SimMode = 'node' | 'core'

/** What a run simulates besides seeds and sizes. */
export interface RunKind {
  readonly mode?: SimMode
  readonly nodeBug?: NodeBug | null
  readonly byzantine?: number
  readonly lies?: readonly ByzantineKind[]
  readonly properties?: readonly ByzantineProperty[]
}

export interface BatchOptions extends RunKind {
  readonly firstSeed: number
  readonly seeds: number
  readonly nodes: number
  readonly steps: number
  readonly jobs: number
  readonly bug?: PlantedBug | null
  /** Stop at the first failing seed (remaining seeds are skipped). */
  readonly stopOnFailure?: boolean
  /** Called every few seconds, and with the final totals. */
  readonly onProgress?: (p: BatchProgress) => void
  readonly onFailure?: (r: SimResult) => void
}

export interface BatchProgress {
  seedsRun: number
  failures: number
  steps: number
  elapsedMs: number
}

export interface BatchSummary extends BatchProgress {
  readonly failed: readonly SimResult[]
}

/** A seed's failure is reported with this command, which replays it exactly. */
export function replayCommand(
  seed: number,
  nodes: number,
  steps: number,
  bug: PlantedBug | null | undefined,
  kind: RunKind = {}
): string {
  const mode = kind.mode ?? 'core'
  const plant = mode === 'core' ? bug : kind.nodeBug
  const byz =
    (kind.byzantine ?? 0) > 0
      ? ` --byzantine ${kind.byzantine}${kind.lies !== undefined ? ` --lies ${kind.lies.join(',')}` : ''}${kind.properties !== undefined ? ` --properties ${kind.properties.join(',')}` : ''}`
      : ''
  return `npm run sim -- ${mode === 'core' ? '--core ' : ''}--seed ${seed} --nodes ${nodes} --steps ${steps}${plant ? ` --plant ${plant}` : ''}${byz}`
}

/** Failed results keep their trace; passing ones are reduced to counters. */
export interface WorkerRequest extends RunKind {
  readonly from: number
  readonly count: number
  readonly nodes: number
  readonly steps: number
  readonly bug: PlantedBug | null
  readonly stopOnFailure: boolean
}

export interface WorkerReply {
  readonly seedsRun: number
  readonly steps: number
  readonly failed: SimResult[]
}

/** One seed of the given kind. */
export async function runOne(
  seed: number,
  nodes: number,
  steps: number,
  bug: PlantedBug | null,
  kind: RunKind,
  alwaysTrace = false
): Promise<SimResult> {
  if ((kind.mode ?? 'core') === 'core') return runSimulation({ seed, nodes, steps, bug, alwaysTrace })
  return await runNodeSimulation({
    seed,
    nodes,
    steps,
    bug: kind.nodeBug ?? null,
    byzantine: kind.byzantine,
    lies: kind.lies,
    properties: kind.properties,
    alwaysTrace
  })
}

export async function runChunk(req: WorkerRequest): Promise<WorkerReply> {
  let steps = 0
  let seedsRun = 0
  const failed: SimResult[] = []
  for (let seed = req.from; seed < req.from + req.count; seed++) {
    const r = await runOne(seed, req.nodes, req.steps, req.bug, req)
    seedsRun++
    steps += r.steps
    if (!r.ok) {
      failed.push(r)
      if (req.stopOnFailure) break
    }
  }
  return { seedsRun, steps, failed }
}

/** A worker thread running worker.ts; it registers the TypeScript loader first (tsx). */
function startWorker(): Worker {
  const entry = new URL('./worker.ts', import.meta.url).href
  const boot = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(entry)}); })`
  return new Worker(boot, { eval: true })
}

export async function runBatch(opts: BatchOptions): Promise<BatchSummary> {
  const start = performance.now()
  const progress: BatchProgress = { seedsRun: 0, failures: 0, steps: 0, elapsedMs: 0 }
  const failed: SimResult[] = []
  const end = opts.firstSeed + opts.seeds
  let next = opts.firstSeed
  let stop = false
  let lastReport = start
  // Small chunks keep both threads busy to the end and failures ordered by seed.
  const chunk = Math.max(1, Math.min(50, Math.ceil(opts.seeds / (opts.jobs * 20))))

  const absorb = (reply: WorkerReply): void => {
    progress.seedsRun += reply.seedsRun
    progress.steps += reply.steps
    for (const f of reply.failed) {
      failed.push(f)
      progress.failures++
      opts.onFailure?.(f)
      if (opts.stopOnFailure) stop = true
    }
    const now = performance.now()
    progress.elapsedMs = now - start
    if (now - lastReport > 5000) {
      lastReport = now
      opts.onProgress?.({ ...progress })
    }
  }
  const take = (): WorkerRequest | null => {
    if (stop || next >= end) return null
    const count = Math.min(chunk, end - next)
    const req: WorkerRequest = {
      from: next,
      count,
      nodes: opts.nodes,
      steps: opts.steps,
      bug: opts.bug ?? null,
      stopOnFailure: opts.stopOnFailure ?? false,
      mode: opts.mode,
      nodeBug: opts.nodeBug,
      byzantine: opts.byzantine,
      lies: opts.lies,
      properties: opts.properties
    }
    next += count
    return req
  }

  if (opts.jobs <= 1) {
    for (let req = take(); req !== null; req = take()) absorb(await runChunk(req))
  } else {
    await Promise.all(
      Array.from({ length: opts.jobs }, async () => {
        const worker = startWorker()
        try {
          for (let req = take(); req !== null; req = take()) {
            absorb(
              await new Promise<WorkerReply>((resolve, reject) => {
                worker.once('message', resolve)
                worker.once('error', reject)
                worker.postMessage(req)
              })
            )
            worker.removeAllListeners('error')
          }
        } finally {
          await worker.terminate()
        }
      })
    )
  }
  failed.sort((a, b) => a.seed - b.seed)
  progress.elapsedMs = performance.now() - start
  return { ...progress, failed }
}
