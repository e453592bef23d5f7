import { Command } from 'commander'
import { clientCommand, clientFor, output, parsePositive, withDataDir } from './util.js'
import type { BoardStatusView, NamedMember } from '../api/types.js'
import { renderTable } from '../host/table.js'

interface LogView {
  entries: Array<{
    index: number
    term: number
    type: string
    hash: string
    bytes: number
    change?: string
    member?: NamedMember
    voters?: NamedMember[]
    learners?: NamedMember[]
  }>
}

const label = (m: NamedMember | null): string => (m === null ? '(none)' : (m.name ?? m.peerId))

function describeChange(e: LogView['entries'][number]): string {
  if (e.change === undefined) return ''
  if (e.change === 'initialize')
    return `initialize voters ${(e.voters ?? []).map(label).join(',')}${(e.learners ?? []).length > 0 ? ` learners ${(e.learners ?? []).map(label).join(',')}` : ''}`
  return `${e.change} ${label(e.member ?? null)}`
}

export function boardCommand(): Command {
  const board = new Command('board').description(
    'the bulletin board: a Raft log of partition statements replicated by the members'
  )

  clientCommand(
    board,
    'status',
    "role, term, leader, commit and applied index, last snapshot; on the leader each member's match index"
  ).action(async (opts: { datadir?: string; json?: boolean }) => {
    const s = await clientFor(opts).get<BoardStatusView>('/v1/board/status')
    output(opts.json === true, s, () => {
      const lines = [
        `role        ${s.role} (term ${s.term})`,
        `leader      ${label(s.leader)}`,
        `commit      ${s.commit}   applied ${s.applied}   last ${s.lastIndex}   snapshot ${s.snapshotIndex}`,
        `voters      ${s.voters.map(label).join(', ')}`,
        `learners    ${s.learners.length === 0 ? '(none)' : s.learners.map(label).join(', ')}`,
        `alarms      ${s.alarms}${(s.shunned ?? []).length > 0 ? `; not following ${(s.shunned ?? []).map(label).join(', ')} (offered to rewrite committed entries)` : ''}`
      ]
      if (s.progress !== null) {
        lines.push(
          '',
          renderTable(
            ['member', 'role', 'match', 'next', 'state'],
            s.progress.map((p) => [
              label(p.member),
              p.learner ? 'learner' : 'voter',
              String(p.match),
              String(p.next),
              p.state
            ]),
            { alignRight: [2, 3] }
          )
        )
      }
      return lines.join('\n')
    })
  })

  clientCommand(board, 'log', 'committed entries: index, term, type and hash')
    .option('--from <index>', 'first index', parsePositive, 1)
    .option('--limit <n>', 'at most this many entries (1000 at most)', parsePositive, 100)
    .action(async (opts: { datadir?: string; from: number; limit: number; json?: boolean }) => {
      const log = await clientFor(opts).get<LogView>(
        `/v1/board/log?from=${opts.from}&limit=${Math.min(opts.limit, 1000)}`
      )
      output(opts.json === true, log, () =>
        renderTable(
          ['index', 'term', 'type', 'bytes', 'hash', 'detail'],
          log.entries.map((e) => [
            String(e.index),
            String(e.term),
            e.type,
            String(e.bytes),
            e.hash.slice(0, 16),
            describeChange(e)
          ]),
          { alignRight: [0, 1, 3] }
        )
      )
    })

  clientCommand(board, 'append', '(lab mode) append an opaque entry and wait until it is committed')
    .requiredOption('--data <text>', "the entry's content (UTF-8 text)")
    .action(async (opts: { datadir?: string; data: string; json?: boolean }) => {
      const result = await clientFor(opts).post<{ index: number; term: number }>(
        '/v1/board/entries',
        { data: Buffer.from(opts.data).toString('base64') },
        { timeoutMs: 30_000 }
      )
      output(opts.json === true, result, () => `committed at index ${result.index} (term ${result.term})`)
    })

  for (const [name, op, description] of [
    [
      'add-member',
      'add',
      'add a pool member to the board as a voter (or, with --learner, a learner); promotes a learner'
    ],
    ['remove-member', 'remove', 'remove a member from the board']
  ] as const) {
    const cmd = board.command(name).description(description).argument('<member>', 'member name or peer id')
    withDataDir(cmd).option('--json', 'print JSON')
    if (op === 'add') cmd.option('--learner', 'add as a learner: receives the log, never votes')
    cmd.action(async (member: string, opts: { datadir?: string; learner?: boolean; json?: boolean }) => {
      const result = await clientFor(opts).post<{ index: number; change: string }>(
        '/v1/board/members',
        { op, member, learner: opts.learner === true },
        { timeoutMs: 30_000 }
      )
      output(opts.json === true, result, () => `${result.change} ${member}: committed at index ${result.index}`)
    })
  }

  withDataDir(
    board
      .command('transfer')
      .description('hand board leadership to another voter')
      .argument('<member>', 'member name or peer id')
  )
    .option('--json', 'print JSON')
    .action(async (member: string, opts: { datadir?: string; node?: number; json?: boolean }) => {
      const r = await clientFor(opts).post<Record<string, unknown>>('/v1/board/transfer', { to: member })
      output(opts.json === true, { to: member, ...r }, () => `leadership transfer to ${member} requested`)
    })

  return board
}
