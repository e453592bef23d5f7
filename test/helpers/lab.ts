import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { RunRecord } from '../../daemon/lab/runner.js'
import type { Summary } from '../../daemon/lab/report.js'
import { isAlive, runCli, tempDir } from './process.js'

/**
 * Plays coalition-drop runs through the built CLI (real node processes) in a temporary directory
 * and returns their records. `cleanup()` kills any node a run left behind (the runner tears its
 * clusters down itself; this is for a test that timed out) and removes the directory.
 */
export class LabRuns {
  private readonly temp = tempDir('poolboard-lab-')

  async play (args: { coalition: string, defenses: string, seed: number, extra?: string[] }): Promise<{ records: RunRecord[], summary: Summary }> {
    const out = join(this.temp.path, `out-${args.coalition}-${args.defenses}-${args.seed}`.replace(/[^A-Za-z0-9.-]/g, '_'))
    const r = await runCli(['lab', 'coalition-drop', '--members', '7', '--coalition', args.coalition, '--defenses', args.defenses, '--runs', '1', '--seed', String(args.seed), '--out', out, '--json', ...(args.extra ?? [])], { timeoutMs: 240_000 })
    if (r.code !== 0) throw new Error(`lab coalition-drop exited ${r.code}: ${r.stderr.trim()}`)
    const summary = JSON.parse(r.stdout) as Summary
    const records = readdirSync(join(out, 'runs')).sort().map((f) => JSON.parse(readFileSync(join(out, 'runs', f), 'utf8')) as RunRecord)
    for (const rec of records) if (rec.error !== null) throw new Error(`run ${rec.run + 1} (${rec.replay}) failed to set up: ${rec.error}`)
    return { records, summary }
  }

  cleanup (): void {
    for (const pidFile of findPidFiles(this.temp.path)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim())
      if (Number.isSafeInteger(pid) && pid > 0 && isAlive(pid) && startedOn(pid, join(pidFile, '..'))) {
        try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
      }
    }
    this.temp.cleanup()
  }
}

/** Pids get reused: only a process started on that data directory is ours. */
function startedOn (pid: number, datadir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(datadir)
  } catch {
    return false
  }
}

function findPidFiles (dir: string, depth = 0): string[] {
  if (depth > 5 || !existsSync(dir)) return []
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...findPidFiles(p, depth + 1))
    else if (e.name === 'poolboard.pid') out.push(p)
  }
  return out
}
