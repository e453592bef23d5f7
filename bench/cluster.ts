import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { poolboard } from './board.js'
import { countsOption, fmt, numberOption, rssMiB, summarize, writeResult, type Summary } from './lib.js'
import { renderTable } from '../daemon/host/table.js'
import { sleep } from '../daemon/host/wait.js'

interface Row {
  nodes: number
  upMs: Summary
  idleRssMiB: Summary
}

/** Time from `cluster up` to every node connected to every other, and each node's RSS after idling. */
export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '5' },
      nodes: { type: 'string', default: '3,7' },
      'idle-s': { type: 'string', default: '10' }
    }
  })
  const runs = numberOption('runs', values.runs, { min: 1, integer: true })
  const sizes = countsOption('nodes', values.nodes)
  const idleMs = numberOption('idle-s', values['idle-s']) * 1000
  const rows: Row[] = []
  for (const nodes of sizes) {
    const upMs: number[] = []
    const rss: number[] = []
    for (let r = 0; r < runs; r++) {
      const base = mkdtempSync(join(tmpdir(), 'poolboard-bench-'))
      const dir = join(base, 'cluster')
      try {
        const t0 = performance.now()
        await poolboard(['cluster', 'up', '--nodes', String(nodes), '--dir', dir, '--json'])
        upMs.push(performance.now() - t0)
        process.stderr.write(`\r${nodes} nodes: run ${r + 1}/${runs} up in ${fmt(upMs[upMs.length - 1], 0)} ms   `)
        if (r === runs - 1) {
          await sleep(idleMs)
          const status = JSON.parse(await poolboard(['cluster', 'status', '--dir', dir, '--json'])) as {
            nodes: Array<{ pid: number | null }>
          }
          for (const n of status.nodes) if (n.pid !== null) rss.push(rssMiB(n.pid))
        }
      } finally {
        await poolboard(['cluster', 'down', '--dir', dir]).catch(() => undefined)
        rmSync(base, { recursive: true, force: true })
      }
    }
    process.stderr.write('\n')
    rows.push({ nodes, upMs: summarize(upMs), idleRssMiB: summarize(rss) })
  }
  process.stdout.write('\ncluster up -> fully connected (includes creating data directories and spawning processes)\n')
  process.stdout.write(
    renderTable(
      ['nodes', 'runs', 'p50 ms', 'p90 ms', 'max ms', 'idle RSS p50 MiB', 'idle RSS max MiB'],
      rows.map((r) => [
        String(r.nodes),
        String(r.upMs.count),
        fmt(r.upMs.p50, 0),
        fmt(r.upMs.p90, 0),
        fmt(r.upMs.max, 0),
        fmt(r.idleRssMiB.p50),
        fmt(r.idleRssMiB.max)
      ]),
      { alignRight: [0, 1, 2, 3, 4, 5, 6] }
    ) + '\n'
  )
  process.stdout.write(`results: ${writeResult('cluster', { runs, idleMs, rows })}\n`)
}
