import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { renderTable } from '../../daemon/host/table.js'
import { UsageError, numberOption } from '../lib.js'

/**
 * `npm run bench -- profile FILE.cpuprofile... [--top 25] [--match TEXT]`: where a profiled
 * process spent its time, by package (or our own folder) and by function, self time; with
 * `--match`, the inclusive time of the functions whose name or file contains TEXT.
 *
 * The profiler samples wall time: on a machine with more runnable processes than cores, a process
 * preempted inside a system call (a socket write that wakes its receiver) is charged there.
 */

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

function frameName(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame
  const file = url.replace(/^.*(node_modules|dist)\//, '')
  return `${functionName === '' ? '(anonymous)' : functionName} ${file}:${lineNumber + 1}`
}

function groupOf(n: ProfileNode): string {
  const { functionName, url } = n.callFrame
  if (url === '') return functionName.startsWith('(') ? functionName : `(native) ${functionName}`
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1]
  const ours = /dist\/(.*)\.js/.exec(url)
  if (ours !== null) return ours[1].split('/').slice(0, -1).join('/') || ours[1]
  return url.startsWith('node:') ? 'node' : url.replace(/^.*\//, '')
}

function summarize(file: string, top: number, match: string | undefined): void {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const selfUs = new Map<number, number>()
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)))
  const groups = new Map<string, number>()
  const functions = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let idleUs = 0
  let busyUs = 0
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!
    if (n.callFrame.functionName === '(idle)') {
      idleUs += us
      continue
    }
    busyUs += us
    groups.set(groupOf(n), (groups.get(groupOf(n)) ?? 0) + us)
    functions.set(frameName(n), (functions.get(frameName(n)) ?? 0) + us)
    if (match === undefined) continue
    const seen = new Set<string>()
    for (let q: number | undefined = id; q !== undefined; q = parent.get(q)) {
      const name = frameName(byId.get(q)!)
      if (seen.has(name) || !name.includes(match)) continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + us)
    }
  }
  const ms = (us: number): string => (us / 1000).toFixed(0)
  const share = (us: number): string => `${((100 * us) / Math.max(1, busyUs)).toFixed(1)}%`
  const rows = (m: Map<string, number>): string[][] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => [ms(us), share(us), k])
  process.stdout.write(
    `\n${file}\nwall ${ms(p.endTime - p.startTime || 0)} ms, busy ${ms(busyUs)} ms, idle ${ms(idleUs)} ms\n\n`
  )
  process.stdout.write(`${renderTable(['self ms', 'of busy', 'package or folder'], rows(groups))}\n\n`)
  process.stdout.write(`${renderTable(['self ms', 'of busy', 'function'], rows(functions))}\n`)
  if (match !== undefined)
    process.stdout.write(
      `\n${renderTable(['inclusive ms', 'of busy', `function (matching ${match})`], rows(inclusive))}\n`
    )
}

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, match: { type: 'string' } }
  })
  if (positionals.length === 0) throw new UsageError('profile: name one or more .cpuprofile files')
  const top = numberOption('top', values.top, { min: 1, integer: true })
  for (const file of positionals) summarize(file, top, values.match)
}
