import { Command, InvalidArgumentError } from 'commander'
import { EXIT } from '../host/errors.js'
import { clientCommand, clientFor, output, parsePositive, parsePositiveSats, parseSats } from './util.js'
import { DEFAULT_BALANCE_SATS, DEFAULT_KICKOUT_DELAY_BLOCKS, type PoolNodeView } from '../pool/view.js'
import { renderTable } from '../host/table.js'
import type { UnfinishedView } from '../pool/before-signing.js'
import type {
  ChainStatus,
  CreateResult,
  EvidenceResult,
  Json,
  KickResult,
  MembersResult,
  MineResult,
  PartitionResult,
  PayResult,
  PoolStatus,
  StatementSummary
} from '../api/types.js'

/** `poolboard pool …` and `poolboard chain …`: clients of a running node's admin API. */

/** A command waits for its round (the timeout) plus the board; the HTTP call gets this much more. */
export const CALL_SLACK_MS = 30_000
export const DEFAULT_TIMEOUT_S = 10

type StatusView = Json<PoolStatus> & { unfinished?: Array<Json<UnfinishedView>> }

export function parseTimeout(text: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n < 0.1 || n > 120)
    throw new InvalidArgumentError(`expected seconds from 0.1 to 120, got "${text}"`)
  return n
}

export function parseMembers(text: string): string[] {
  const list = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (list.length === 0) throw new InvalidArgumentError('expected member names separated by commas, e.g. node2,node3')
  return list
}

function collectPay(
  text: string,
  all: Array<{ to: string; amountSats: string }> = []
): Array<{ to: string; amountSats: string }> {
  const m = /^([^:]+):(\d{1,16})$/.exec(text.trim())
  if (m === null || BigInt(m[2]) < 1n)
    throw new InvalidArgumentError(`expected MEMBER:SATS with at least 1 sat, got "${text}"`)
  return [...all, { to: m[1], amountSats: m[2] }]
}

const fmtSats = (n: number | string): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',')

/** A pool tree as indented text lines, for people. */
function renderTree(node: Json<PoolNodeView>, prefix = '', last = true, depth = 0): string[] {
  const held = Object.entries(node.balances)
    .map(([n, b]) => `${n} ${b}`)
    .join(', ')
  const moved = node.members.filter((m) => m.movedTo !== null).map((m) => m.name)
  const line =
    `${depth === 0 ? '' : prefix + (last ? '└─ ' : '├─ ')}${node.label}  state ${node.state}  ${node.status}` +
    `${depth > 0 ? `  (board index ${node.createdAtIndex})` : ''}${held === '' ? '' : `  holds ${held}`}${moved.length === 0 ? '' : `  (${moved.join(', ')} moved on)`}`
  const childPrefix = depth === 0 ? '' : prefix + (last ? '   ' : '│  ')
  return [
    line,
    ...node.children.flatMap((c, i) => renderTree(c, childPrefix, i === node.children.length - 1, depth + 1))
  ]
}

export function renderPoolStatus(s: StatusView): string {
  if (s.poolId === null)
    return `no pool on the board yet (chain height ${s.chainHeight}); create one with: poolboard pool create`
  const lines = [
    `pool       ${s.poolId}`,
    `members    ${s.members.length}, total ${fmtSats(s.totalSats)} sats, kick-out delay X = ${s.kickoutDelayBlocks} blocks`,
    `chain      height ${s.chainHeight}  (board index ${s.appliedIndex})`,
    `root       state ${s.state}  ${s.tree?.status ?? ''}`,
    `evidence   ${s.evidenceCount}${s.equivocators.length === 0 ? '' : `  (proven equivocators: ${s.equivocators.join(', ')})`}`,
    `me         ${s.me.name}${s.me.poolLabel === null ? '' : `, funds in the ${s.me.poolLabel}`}`,
    '',
    renderTable(
      ['member', 'where', 'balance (sats)', 'on chain'],
      s.members.map((m) => [
        m.name,
        m.poolLabel ?? '(kicked out)',
        fmtSats(m.balanceSats),
        m.onChainSats > 0 ? fmtSats(m.onChainSats) : ''
      ]),
      { alignRight: [2, 3] }
    )
  ]
  if (s.tree !== null) lines.push('', 'pools', ...renderTree(s.tree))
  if (s.pending.length > 0) {
    lines.push('', 'rounds in progress on this node')
    for (const p of s.pending)
      lines.push(
        `  ${p.kind} ${p.what}: signed ${p.signed.join(', ') || '-'}; waiting for ${p.missing.join(', ') || '-'}${p.refused.length > 0 ? `; refused by ${p.refused.join(', ')}` : ''} (${Math.ceil(p.deadlineInMs / 1000)} s left)`
      )
  }
  if ((s.unfinished ?? []).length > 0) {
    lines.push(
      '',
      'signed by you, not on the board (your Withdraw output or next state is promised to it until it completes)'
    )
    for (const u of s.unfinished ?? [])
      lines.push(`  ${u.what}: needs ${u.with.join(', ') || '-'}; complete it with: ${u.complete}`)
  }
  return lines.join('\n')
}

export function poolCommand(): Command {
  const pool = new Command('pool').description(
    'the payment pool: create it, pay, partition among the online members, kick out, evidence'
  )

  clientCommand(
    pool,
    'create',
    'create the pool (run on one node, every member online): genesis, state 0 signed by all'
  )
    .option('--balance <sats>', "each member's starting balance", parseSats, String(DEFAULT_BALANCE_SATS))
    .option(
      '--kickout-delay <blocks>',
      "X: blocks after a state's height T before a member can be kicked out",
      parsePositive,
      DEFAULT_KICKOUT_DELAY_BLOCKS
    )
    .option('--timeout <seconds>', 'how long to wait for every member', parseTimeout, 30)
    .action(
      async (opts: { datadir?: string; balance: string; kickoutDelay: number; timeout: number; json?: boolean }) => {
        const timeoutMs = Math.round(opts.timeout * 1000)
        const r = await clientFor(opts).post<Json<CreateResult>>(
          '/v1/pool/create',
          { balanceSats: opts.balance, kickoutDelayBlocks: opts.kickoutDelay, timeoutMs },
          { timeoutMs: timeoutMs + CALL_SLACK_MS }
        )
        output(opts.json === true, r, () =>
          [
            `pool ${r.poolId} created at board index ${r.index}`,
            `  members  ${r.members.join(', ')}`,
            `  balances ${Object.entries(r.balances)
              .map(([n, b]) => `${n} ${fmtSats(b)}`)
              .join(', ')}`,
            `  X = ${r.kickoutDelayBlocks} blocks, created at height ${r.creationHeight}`
          ].join('\n')
        )
      }
    )

  clientCommand(
    pool,
    'status',
    "pool id, state, where each member's funds are, the tree of partitions, rounds in progress, chain height, evidence"
  )
    .option('--local', 'show what this node has applied, without first reading the board through the leader')
    .action(async (opts: { datadir?: string; json?: boolean; local?: boolean }) => {
      const s = await clientFor(opts).get<StatusView & { fresh?: boolean }>(
        `/v1/pool/status${opts.local === true ? '' : '?fresh=1'}`
      )
      output(opts.json === true, s, () => renderPoolStatus(s))
      if (s.fresh === false) {
        // Not the current board: a script must not take it for one (docs/operations.md, exit codes).
        process.stderr.write(
          `poolboard: the board could not be read through a leader; this is only what this node has applied so far (board index ${s.appliedIndex}); run again, or use --local to accept it\n`
        )
        process.exitCode = EXIT.unreachable
      }
    })

  clientCommand(pool, 'members', 'names, peer ids and member keys this node knows').action(
    async (opts: { datadir?: string; json?: boolean }) => {
      const r = await clientFor(opts).get<Json<MembersResult>>('/v1/pool/members')
      output(opts.json === true, r, () =>
        renderTable(
          ['name', 'peer id', 'member key'],
          r.members.map((m) => [m.name, m.peerId, m.key ?? '(not known yet)'])
        )
      )
    }
  )

  clientCommand(
    pool,
    'pay',
    'pay another member of your current pool: the next state, signed by every member of that pool'
  )
    .requiredOption('--to <member>', 'the payee (name, peer id or member key)')
    .requiredOption('--amount <sats>', 'amount in sats', parsePositiveSats)
    .option('--timeout <seconds>', "how long to wait for every member's signature", parseTimeout, DEFAULT_TIMEOUT_S)
    .action(async (opts: { datadir?: string; to: string; amount: string; timeout: number; json?: boolean }) => {
      const timeoutMs = Math.round(opts.timeout * 1000)
      const r = await clientFor(opts).post<Json<PayResult>>(
        '/v1/pool/pay',
        { to: opts.to, amountSats: opts.amount, timeoutMs },
        { timeoutMs: timeoutMs + CALL_SLACK_MS }
      )
      output(
        opts.json === true,
        r,
        () =>
          `paid ${fmtSats(opts.amount)} sats to ${opts.to}: state ${r.state} of the ${r.poolLabel} (board index ${r.index})\n` +
          `  balances ${Object.entries(r.balances)
            .map(([n, b]) => `${n} ${fmtSats(b)}`)
            .join(', ')}`
      )
    })

  clientCommand(
    pool,
    'partition',
    "partition your current pool among you and the online members you name; the others' balances are untouched"
  )
    .requiredOption('--with <members>', 'the other actives, comma-separated (e.g. node2,node3)', parseMembers)
    .option('--pay <member:sats>', 'move sats from you to another active in the partition (repeatable)', collectPay)
    .option('--timeout <seconds>', "how long to wait for every active's signature", parseTimeout, DEFAULT_TIMEOUT_S)
    .action(
      async (opts: {
        datadir?: string
        with: string[]
        pay?: Array<{ to: string; amountSats: string }>
        timeout: number
        json?: boolean
      }) => {
        const timeoutMs = Math.round(opts.timeout * 1000)
        const r = await clientFor(opts).post<Json<PartitionResult>>(
          '/v1/pool/partition',
          { with: opts.with, pay: opts.pay ?? [], timeoutMs },
          { timeoutMs: timeoutMs + CALL_SLACK_MS }
        )
        output(opts.json === true, r, () =>
          [
            `accepted: ${r.poolLabel} of the ${r.parent}, committed at board index ${r.index}`,
            `  statement ${r.statementId}`,
            `  actives   ${r.actives.join(', ')}`,
            `  balances  ${Object.entries(r.balances)
              .map(([n, b]) => `${n} ${fmtSats(b)}`)
              .join(', ')}`
          ].join('\n')
        )
      }
    )

  clientCommand(
    pool,
    'kick',
    'kick a member out of its current pool with its kick-out Withdraw (valid from height T + X + 1)'
  )
    .argument('<member>', 'member name, peer id or member key')
    .action(async (member: string, opts: { datadir?: string; json?: boolean }) => {
      const r = await clientFor(opts).post<Json<KickResult>>('/v1/pool/kick', { member }, { timeoutMs: CALL_SLACK_MS })
      output(opts.json === true, r, () =>
        [
          `kicked ${r.member} out of the ${r.poolLabel} (state ${r.state}) at height ${r.height}, board index ${r.index}`,
          `  ${fmtSats(r.exitSats)} sats paid to ${r.member} on chain by kick-out Withdraw ${r.txid}`,
          `  ${r.continuationLabel === null ? 'nothing remains in the pool' : `the others go on in the ${r.continuationLabel}`}`
        ].join('\n')
      )
    })

  clientCommand(
    pool,
    'merge',
    "merge a frozen pool's partitions back into it (every member under it online): one state signed by all its members"
  )
    .option(
      '--pool <id>',
      'the frozen pool: "root" (default) or a partition\'s statement id (its first 16 hex digits are enough)'
    )
    .option('--timeout <seconds>', "how long to wait for every member's signature", parseTimeout, DEFAULT_TIMEOUT_S)
    .action(async (opts: { datadir?: string; pool?: string; timeout: number; json?: boolean }) => {
      const timeoutMs = Math.round(opts.timeout * 1000)
      const r = await clientFor(opts).post<{
        poolLabel: string
        state: number
        index: number
        merged: string[]
        balances: Record<string, number>
      }>('/v1/pool/merge', { pool: opts.pool, timeoutMs }, { timeoutMs: timeoutMs + CALL_SLACK_MS })
      output(opts.json === true, r, () =>
        [
          `merged: state ${r.state} of the ${r.poolLabel} (board index ${r.index}) folds back ${r.merged.join(', ')}`,
          `  balances ${Object.entries(r.balances)
            .map(([n, b]) => `${n} ${fmtSats(b)}`)
            .join(', ')}`,
          `  the ${r.poolLabel} is open again; the partitions under it take nothing more`
        ].join('\n')
      )
    })

  clientCommand(pool, 'evidence', 'proofs that a member signed two conflicting partition statements').action(
    async (opts: { datadir?: string; json?: boolean }) => {
      const r = await clientFor(opts).get<Json<EvidenceResult>>('/v1/pool/evidence')
      const describe = (s: Json<StatementSummary>): string =>
        `${s.statementId.slice(0, 16)} (${s.actives.join(', ')}; ${s.board === null ? 'never on the board' : `${s.board.status} at index ${s.board.index}`}) of the ${s.parent}`
      output(opts.json === true, r, () =>
        r.evidence.length === 0
          ? 'no evidence of equivocation on the board'
          : r.evidence
              .map(
                (e) =>
                  `${e.member} signed two conflicting statements (recorded at board index ${e.index}, ${e.source === 'conflict' ? 'from a conflicting statement' : 'by gossip'}):\n  ${describe(e.first)}\n  ${describe(e.second)}`
              )
              .join('\n')
      )
    }
  )

  return pool
}

export function chainCommand(): Command {
  const chain = new Command('chain').description(
    'the simulated chain: its height is on the board, so every member agrees on it'
  )

  clientCommand(chain, 'status', 'height of the simulated chain and the block interval').action(
    async (opts: { datadir?: string; json?: boolean }) => {
      const r = await clientFor(opts).get<Json<ChainStatus>>('/v1/chain/status')
      output(
        opts.json === true,
        r,
        () =>
          `height ${r.height}; ${r.blockIntervalS === 0 ? 'blocks only by poolboard chain mine' : `the board leader mines a block every ${r.blockIntervalS} s`}`
      )
    }
  )

  clientCommand(chain, 'mine', 'mine N blocks (one board entry) and wait until it is applied here')
    .argument('<n>', 'number of blocks (1 to 10000)', parsePositive)
    .action(async (n: number, opts: { datadir?: string; json?: boolean }) => {
      const r = await clientFor(opts).post<Json<MineResult>>(
        '/v1/chain/mine',
        { blocks: n },
        { timeoutMs: CALL_SLACK_MS }
      )
      output(
        opts.json === true,
        r,
        () => `mined ${n} block${n === 1 ? '' : 's'}: height ${r.height} (board index ${r.index})`
      )
    })

  return chain
}
