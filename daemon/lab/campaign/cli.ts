import { randomInt } from 'node:crypto'
import { Command, InvalidArgumentError } from 'commander'
import pino from 'pino'
import type { Json } from '../../api/server.js'
import { CALL_SLACK_MS, DEFAULT_TIMEOUT_S, parseMembers, parseTimeout } from '../../commands/pool.js'
import { clientCommand, clientFor, dataDir, output, parsePort, parsePositive } from '../../commands/util.js'
import { UserError } from '../../host/errors.js'
import { Progress } from '../../host/table.js'
import { clustersDir, runCampaign } from './campaign.js'
import { addInteractivityCommand } from '../interactivity/cli.js'
import { LabWatch } from '../../dashboard/lab-watch.js'
import { serveSites } from '../../dashboard/site.js'
import { openBrowser } from '../../dashboard/command.js'
import { dropStatement } from './drop.js'
import { checkPlanOptions, planRuns, parseDefenseList, parseRangeList, MAX_MEMBERS, type AnswerOrder } from './plan.js'
import type { EquivocateResult } from '../node/equivocate.js'
import { renderSummaryTable } from './report.js'

// daemon/lab/: the lab, where members misbehave on purpose to watch the defenses work
// (docs/lab.md). lab/node/ holds the hooks that run inside a node in lab mode (censor, coalition,
// equivocation, their API routes); lab/campaign/ the client-side tool that runs campaigns of
// clusters and reports them (this file is its CLI, `poolboard lab …`).

/** `poolboard lab …`: (lab mode) adversarial behaviours, to watch the defenses work (docs/lab.md). */
export function labCommand(): Command {
  const lab = new Command('lab').description('(lab mode) adversarial behaviours, to watch the defenses work')

  clientCommand(
    lab,
    'equivocate',
    'sign a partition that conflicts with one this member already signed, and ask MEMBERS to sign it too'
  )
    .requiredOption(
      '--with <members>',
      'the members asked to join the conflicting partition, comma-separated',
      parseMembers
    )
    .option('--timeout <seconds>', 'how long to wait for their answers', parseTimeout, DEFAULT_TIMEOUT_S)
    .action(async (opts: { datadir?: string; with: string[]; timeout: number; json?: boolean }) => {
      const timeoutMs = Math.round(opts.timeout * 1000)
      const r = await clientFor(opts).post<Json<EquivocateResult>>(
        '/v1/lab/equivocate',
        { with: opts.with, timeoutMs },
        { timeoutMs: timeoutMs + CALL_SLACK_MS }
      )
      output(opts.json === true, r, () => {
        const lines = [
          `signed statement ${r.statementId.slice(0, 16)}, which spends the same Withdraw output as statement ${r.first.statementId.slice(0, 16)} (${r.first.actives.join(', ')}${r.first.index === null ? '' : `; accepted at board index ${r.first.index}`})`
        ]
        if (r.outcome === 'refused') {
          for (const f of r.refusals) lines.push(`refused by ${f.member}: ${f.reason}`)
          lines.push('the honest members would not sign; the equivocation is evidence now: poolboard pool evidence')
        } else if (r.outcome === 'accepted') {
          lines.push(
            'every member asked signed it, and the board accepted it (the first statement was never committed)'
          )
        } else {
          lines.push(`${r.outcome}: ${r.message}`)
        }
        return lines.join('\n')
      })
      if (r.outcome === 'failed') process.exitCode = 1
    })

  addLabCommands(lab)
  addInteractivityCommand(lab)
  return lab
}

/** `poolboard lab drop`, `lab censor` and `lab coalition-drop` (docs/lab.md). */
function addLabCommands(lab: Command): void {
  clientCommand(
    lab,
    'drop',
    '(offline) make this STOPPED node a coalition member: its board log hides a committed statement; start it again afterwards'
  )
    .requiredOption('--statement <id>', 'the statement id (or its first 8+ hex digits)')
    .action(async (opts: { datadir?: string; statement: string; json?: boolean }) => {
      const r = await dropStatement(dataDir(opts).path, opts.statement)
      output(opts.json === true, r, () =>
        [
          `dropped statement ${r.statementId.slice(0, 16)} from ${r.datadir}: entry ${r.index} (term ${r.term}) is now an empty leader entry`,
          `  ${r.rehashed} later entries re-hashed; pool records rebuilt up to index ${r.applied}`,
          '  lab-coalition=1: when started again this node checks no hashes, raises no alarm, sends no evidence and answers from its rewritten board'
        ].join('\n')
      )
    })

  clientCommand(
    lab,
    'censor',
    'while this node leads the board, drop every proposal of a statement MEMBER signed (--stop to end)'
  )
    .option('--member <name>', 'the member whose statements are dropped')
    .option('--stop', 'stop censoring')
    .action(async (opts: { datadir?: string; member?: string; stop?: boolean; json?: boolean }) => {
      if ((opts.member === undefined) === (opts.stop !== true))
        throw new UserError('give either --member NAME or --stop')
      const r = await clientFor(opts).post<{ censoring: { name: string } | null }>('/v1/lab/censor', {
        member: opts.stop === true ? null : opts.member
      })
      output(opts.json === true, r, () =>
        r.censoring === null
          ? 'not censoring'
          : `censoring: while this node leads, statements signed by ${r.censoring.name} are dropped`
      )
    })

  lab
    .command('coalition-drop')
    .description(
      'run the coalition-drop attack on real local clusters, many seeded runs, with the defenses switched per run; writes records, a summary, a table and a chart'
    )
    .option('--members <n>', `pool members, one node process each (4 to ${MAX_MEMBERS})`, parsePositive, 7)
    .option(
      '--coalition <sizes>',
      'coalition sizes, A included: a range 1..5 or a list 0,2,4 (0: no adversary)',
      '1..5'
    )
    .option(
      '--defenses <list>',
      'defense sets: none, quorum-read, hash-chain, gossip-check, evidence, all (or "every")',
      'every'
    )
    .option('--runs <n>', 'runs of every (coalition size, defenses) pair', parsePositive, 1)
    .option('--seed <n>', 'seed of the first run (default: random, printed); the others derive from it', parseSeed)
    .option(
      '--order <order>',
      "who answers the defenses' questions first: adversarial (the coalition) or random",
      parseOrder,
      'adversarial'
    )
    .option(
      '--holders-offline',
      'every honest member holding S1 is offline when C comes back (the case no defense covers)'
    )
    .option(
      '--out <dir>',
      'where records, summary, table and chart go',
      `lab-out/coalition-drop-${new Date().toISOString().replace(/[:.]/g, '-')}`
    )
    .option('--keep', "keep every run's cluster directory (by default only failed runs keep theirs)")
    .option(
      '--watch',
      'serve a live page of the campaign (cast, boards, alarms, verdicts) and print its link; it stays up after the last run until Ctrl-C'
    )
    .option('--watch-port <port>', 'with --watch: the loopback port (default: a free one)', parsePort)
    .option('--no-open', 'with --watch: only print the link, do not open a browser')
    .option('--json', 'print the summary as JSON')
    .action(
      async (opts: {
        members: number
        coalition: string
        defenses: string
        runs: number
        seed?: number
        order: AnswerOrder
        holdersOffline?: boolean
        out: string
        keep?: boolean
        watch?: boolean
        watchPort?: number
        open: boolean
        json?: boolean
      }) => {
        let coalitionSizes: number[]
        let defenses: ReturnType<typeof parseDefenseList>
        try {
          coalitionSizes = parseRangeList(opts.coalition, 0, MAX_MEMBERS, '--coalition')
          defenses = parseDefenseList(opts.defenses)
        } catch (err) {
          throw new UserError((err as Error).message)
        }
        const seed = opts.seed ?? randomInt(0, 0x7fffffff)
        const plan = {
          members: opts.members,
          coalitionSizes,
          defenses,
          runs: opts.runs,
          seed,
          order: opts.order,
          holdersOffline: opts.holdersOffline === true
        }
        const problem = checkPlanOptions(plan)
        if (problem !== null) throw new UserError(problem)
        const command = `poolboard lab coalition-drop --members ${plan.members} --coalition ${opts.coalition} --defenses ${defenses.join(',')} --runs ${plan.runs} --seed ${seed} --order ${plan.order}${plan.holdersOffline ? ' --holders-offline' : ''}`
        const json = opts.json === true
        const say = (line: string): void => {
          process.stderr.write(line + '\n')
        }
        let watch: LabWatch | undefined
        let server: Awaited<ReturnType<typeof serveSites>> | undefined
        if (opts.watch === true) {
          const totalRuns = planRuns(plan).length
          watch = new LabWatch({
            members: plan.members,
            totalRuns,
            seed,
            command,
            workDir: clustersDir(opts.out),
            logger: pino({ level: 'warn' }, pino.destination(2))
          })
          server = await serveSites([watch.site], opts.watchPort ?? 0)
          const url = watch.site.link(`http://127.0.0.1:${server.port}`)
          say(`watch the campaign at ${url} (a one-time link)`)
          if (opts.open) openBrowser(url)
        }
        const result = await runCampaign(
          { ...plan, outDir: opts.out, keep: opts.keep === true, command, watch },
          new Progress(true),
          say
        )
        output(json, result.summary, () =>
          [
            renderSummaryTable(result.summary),
            '',
            `poolboard ${result.summary.version} on ${result.summary.machine}`,
            `records    ${result.outDir}/runs/ (${result.records.length}; each says how to replay it)`,
            `summary    ${result.outDir}/summary.json, ${result.outDir}/summary.csv`,
            `chart      ${result.outDir}/chart.svg, ${result.outDir}/report.html`
          ].join('\n')
        )
        if (server !== undefined) {
          say('the watch page stays up; Ctrl-C to end')
          const open = server
          await new Promise<void>((resolve) => {
            const stop = (): void => {
              void open.close().then(resolve)
            }
            process.once('SIGINT', stop)
            process.once('SIGTERM', stop)
          })
        }
      }
    )
}

function parseSeed(text: string): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n > 0xffffffff)
    throw new InvalidArgumentError(`expected a whole number from 0 to ${0xffffffff}, got "${text}"`)
  return n
}

function parseOrder(text: string): AnswerOrder {
  if (text !== 'adversarial' && text !== 'random')
    throw new InvalidArgumentError(`expected adversarial or random, got "${text}"`)
  return text
}
