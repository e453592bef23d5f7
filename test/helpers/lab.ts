import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { RunRecord } from '../../daemon/lab/campaign/runner.js'
import type { Summary } from '../../daemon/lab/campaign/report.js'
import { LocalCluster } from '../../daemon/cluster/index.js'
import { Progress } from '../../daemon/host/table.js'
import { runCli, tempDir } from './process.js'

/**
 * Plays coalition-drop runs through the built CLI (real node processes) in a temporary directory
 * and returns their records. `cleanup()` kills any node a run left behind (the runner tears its
 * clusters down itself; this is for a test that timed out) and removes the directory.
 */
export class LabRuns {
  private readonly temp = tempDir('poolboard-lab-')

  async play(args: {
    coalition: string
    defenses: string
    seed: number
    extra?: string[]
  }): Promise<{ records: RunRecord[]; summary: Summary }> {
    const out = join(
      this.temp.path,
      `out-${args.coalition}-${args.defenses}-${args.seed}`.replace(/[^A-Za-z0-9.-]/g, '_')
    )
    const r = await runCli(
      [
        'lab',
        'coalition-drop',
        '--members',
        '7',
        '--coalition',
        args.coalition,
        '--defenses',
        args.defenses,
        '--runs',
        '1',
        '--seed',
        String(args.seed),
        '--out',
        out,
        '--json',
        ...(args.extra ?? [])
      ],
      { timeoutMs: 240_000 }
    )
    if (r.code !== 0) throw new Error(`lab coalition-drop exited ${r.code}: ${r.stderr.trim()}`)
    const summary = JSON.parse(r.stdout) as Summary
    const records = readdirSync(join(out, 'runs'))
      .sort()
      .map((f) => JSON.parse(readFileSync(join(out, 'runs', f), 'utf8')) as RunRecord)
    for (const rec of records)
      if (rec.error !== null) throw new Error(`run ${rec.run + 1} (${rec.replay}) failed to set up: ${rec.error}`)
    return { records, summary }
  }

  cleanup(): void {
    for (const dir of clusterDirs(this.temp.path)) new LocalCluster(dir, new Progress(false)).killAllNow()
    this.temp.cleanup()
  }
}

/** The local clusters below `dir` (the lab keeps one per run that failed or was cut short). */
function clusterDirs(dir: string, depth = 0): string[] {
  if (depth > 5 || !existsSync(dir)) return []
  if (new LocalCluster(dir, new Progress(false)).exists()) return [dir]
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => clusterDirs(join(dir, e.name), depth + 1))
}
