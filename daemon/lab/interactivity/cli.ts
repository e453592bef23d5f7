import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { InvalidArgumentError, type Command } from 'commander'
import { parsePositive } from '../../commands/util.js'
import { UserError } from '../../host/errors.js'
import { VERSION } from '../../host/version.js'
import { checkOnBoard } from './board-check.js'
import { MAX_MODEL_MEMBERS, POLICIES, runModel, type Policy } from './model.js'
import {
  cellsCsv,
  detailTable,
  headlineTable,
  renderHtml,
  runsCsv,
  seriesChart,
  seriesCsv,
  uptimeChart,
  type ReportMeta
} from './report.js'
import { DEFAULT_GRID, QUICK_GRID, runStudy, type Grid } from './study.js'
import { mixSeed } from '../campaign/plan.js'

/** `poolboard lab interactivity` (docs/interactivity.md). */
export function addInteractivityCommand(lab: Command): void {
  lab
    .command('interactivity')
    .description(
      'the interactivity study: share of payments completed off chain, delays, sub-pools, frozen funds and exit footprint, per policy, for pool sizes and uptimes; writes tables, CSV and charts'
    )
    .option('--quick', 'the small grid (n 4, 16; p 0.9, 0.5; 3 seeds; 2 days) for CI')
    .option('--members <list>', `pool sizes, comma-separated (2 to ${MAX_MODEL_MEMBERS})`, parseIntList)
    .option('--uptimes <list>', 'mean uptimes p, comma-separated (0 < p <= 1)', parseUptimes)
    .option('--policies <list>', `policies, comma-separated: ${POLICIES.join(', ')}`, parsePolicies)
    .option('--seeds <n>', 'runs (seeds) of every (n, p) pair', parsePositive)
    .option('--seed <n>', 'the first seed; run r uses a seed derived from it', parseSeed)
    .option('--days <n>', 'length of each run in days', parsePositive)
    .option(
      '--check-board',
      'also replay every run with n <= 16 of the first seed on the real board state machine (real signatures) and check it accepts every step'
    )
    .option(
      '--replay-cluster',
      'replay one schedule (n 16) on a real local cluster of 16 nodes and compare with the model (minutes; wrap it in a heavy-run lock)'
    )
    .option(
      '--out <dir>',
      'where the CSV, tables and charts go',
      `lab-out/interactivity-${new Date().toISOString().replace(/[:.]/g, '-')}`
    )
    .option('--json', 'print the cells as JSON')
    .action(
      async (opts: {
        quick?: boolean
        members?: number[]
        uptimes?: number[]
        policies?: Policy[]
        seeds?: number
        seed?: number
        days?: number
        checkBoard?: boolean
        replayCluster?: boolean
        out: string
        json?: boolean
      }) => {
        const base = opts.quick === true ? QUICK_GRID : DEFAULT_GRID
        const grid: Grid = {
          members: opts.members ?? base.members,
          uptimes: opts.uptimes ?? base.uptimes,
          policies: opts.policies ?? base.policies,
          seeds: opts.seeds ?? base.seeds,
          seed: opts.seed ?? base.seed,
          model: { ...base.model, horizonMin: opts.days === undefined ? base.model.horizonMin : opts.days * 1440 }
        }
        if (grid.model.horizonMin <= grid.model.patienceMin)
          throw new UserError(`--days: a run must be longer than the patience (${grid.model.patienceMin / 1440} day)`)
        const command = [
          'poolboard lab interactivity',
          opts.quick === true ? '--quick' : '',
          `--members ${grid.members.join(',')}`,
          `--uptimes ${grid.uptimes.join(',')}`,
          `--policies ${grid.policies.join(',')}`,
          `--seeds ${grid.seeds}`,
          `--seed ${grid.seed}`,
          `--days ${grid.model.horizonMin / 1440}`,
          opts.checkBoard === true ? '--check-board' : '',
          opts.replayCluster === true ? '--replay-cluster' : ''
        ]
          .filter((x) => x !== '')
          .join(' ')
        const say = (line: string): void => {
          process.stderr.write(line + '\n')
        }
        say(`${command}\n  writing to ${opts.out}`)
        const result = runStudy(grid, (done, total) => {
          say(`  ${done}/${total} (n, p) pairs done`)
        })
        const meta: ReportMeta = { command, version: VERSION, createdAt: new Date().toISOString() }
        let replayText: string | undefined
        if (opts.checkBoard === true) {
          for (const n of grid.members.filter((x) => x <= 16)) {
            for (const p of grid.uptimes) {
              for (const policy of grid.policies) {
                const run = runModel({ ...grid.model, members: n, uptime: p, policy, seed: mixSeed(grid.seed, 0) })
                const c = checkOnBoard(run)
                say(
                  `  board check n ${n}, p ${p}, ${policy}: ${run.ops.length} operations, ${c.entries} entries and ${c.signatures} signatures accepted, final balances agree`
                )
              }
            }
          }
        }
        if (opts.replayCluster === true) {
          const { replayOnCluster, renderReplay } = await import('./replay.js')
          const replay = await replayOnCluster({ seed: grid.seed, dir: join(opts.out, 'cluster'), say })
          replayText = renderReplay(replay, result)
          say(replayText)
          writeFileSync(join(opts.out, 'replay.json'), JSON.stringify(replay, null, 2) + '\n')
        }
        mkdirSync(join(opts.out, 'charts'), { recursive: true })
        writeFileSync(join(opts.out, 'cells.csv'), cellsCsv(result))
        writeFileSync(join(opts.out, 'runs.csv'), runsCsv(result.runs))
        writeFileSync(join(opts.out, 'series.csv'), seriesCsv(result.series))
        const tables =
          `# ${command}\n\npoolboard ${VERSION}, ${meta.createdAt}\n\n## Share of payments completed off chain\n\n${headlineTable(result)}\n` +
          grid.policies.map((p) => `## ${p}\n\n${detailTable(result, p)}`).join('\n')
        writeFileSync(join(opts.out, 'tables.md'), tables)
        writeFileSync(
          join(opts.out, 'charts', 'off-chain.svg'),
          uptimeChart(result, 'offChainShare', {
            title: 'Payments completed off chain (within one day)',
            yLabel: 'share of payments',
            scale: 100,
            yMax: 100,
            unit: '%'
          })
        )
        writeFileSync(
          join(opts.out, 'charts', 'delay-p99.svg'),
          uptimeChart(result, 'delayP99Min', {
            title: 'Delay until completed, 99th percentile',
            yLabel: 'minutes',
            scale: 1,
            unit: ''
          })
        )
        writeFileSync(
          join(opts.out, 'charts', 'exit-vbytes.svg'),
          uptimeChart(result, 'exitVbytes', {
            title: 'On-chain footprint if everyone exited at the end (with fee children)',
            yLabel: 'virtual bytes',
            scale: 1,
            unit: ' vB',
            log: true
          })
        )
        writeFileSync(join(opts.out, 'charts', 'open-pools.svg'), seriesChart(result.series))
        writeFileSync(join(opts.out, 'report.html'), renderHtml(result, meta, { replay: replayText }))
        writeFileSync(
          join(opts.out, 'summary.json'),
          JSON.stringify({ ...meta, grid, durationMs: result.durationMs, cells: result.cells }, null, 2) + '\n'
        )
        if (opts.json === true) process.stdout.write(JSON.stringify(result.cells) + '\n')
        else process.stdout.write(headlineTable(result))
        say(
          `  ${result.runs.length} runs in ${(result.durationMs / 1000).toFixed(1)} s; report: ${join(opts.out, 'report.html')}`
        )
      }
    )
}

function parseIntList(text: string): number[] {
  const list = text.split(',').map((s) => Number(s.trim()))
  if (list.length === 0 || !list.every((n) => Number.isInteger(n) && n >= 2 && n <= MAX_MODEL_MEMBERS))
    throw new InvalidArgumentError(`expected pool sizes from 2 to ${MAX_MODEL_MEMBERS}, e.g. 4,16,64`)
  return list
}

function parseUptimes(text: string): number[] {
  const list = text.split(',').map((s) => Number(s.trim()))
  if (list.length === 0 || !list.every((p) => Number.isFinite(p) && p > 0 && p <= 1))
    throw new InvalidArgumentError('expected uptimes above 0 and at most 1, e.g. 0.99,0.9,0.5')
  return list
}

function parsePolicies(text: string): Policy[] {
  const list = text.split(',').map((s) => s.trim())
  for (const p of list)
    if (!(POLICIES as readonly string[]).includes(p))
      throw new InvalidArgumentError(`unknown policy "${p}" (${POLICIES.join(', ')})`)
  return list as Policy[]
}

function parseSeed(text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
    throw new InvalidArgumentError(`expected a seed from 0 to ${0xffffffff}, got "${text}"`)
  return n
}
