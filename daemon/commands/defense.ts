import { Command } from 'commander'
import { clientCommand, clientFor, output } from './util.js'
import type { DefenseStatus } from '../api/types.js'
import { renderTable } from '../host/table.js'

/** `poolboard defense status`: which defenses this node runs and what they detected (docs/lab.md). */
export function defenseCommand(): Command {
  const defense = new Command('defense').description(
    'defenses against a coalition of board hosts hiding a statement: settings and detections'
  )

  clientCommand(
    defense,
    'status',
    'the defenses this node runs, and every detection: which defense, what it saw, when'
  ).action(async (opts: { datadir?: string; json?: boolean }) => {
    const s = await clientFor(opts).get<DefenseStatus>('/v1/defense')
    output(opts.json === true, s, () => {
      const on = (b: boolean): string => (b ? 'on' : 'off')
      const lines = [
        `quorum read   ${on(s.enabled.quorumRead)}${s.enabled.quorumRead ? ` (history cross-checked with a majority up to index ${s.quorumVerifiedThrough})` : ''}`,
        `hash chain    ${on(s.enabled.hashChain)}`,
        `gossip check  ${on(s.enabled.gossipCheck)}`,
        `evidence      ${on(s.enabled.evidence)}`
      ]
      if (s.labCoalition) lines.push('(lab) this node is a coalition member: it defends nothing')
      lines.push('')
      lines.push(
        s.alarms.length === 0
          ? 'no detections'
          : renderTable(
              ['time', 'defense', 'how', 'what'],
              s.alarms.map((a) => [new Date(a.atMs).toISOString().slice(11, 23), a.defense, a.how, a.message])
            )
      )
      return lines.join('\n')
    })
  })

  return defense
}
