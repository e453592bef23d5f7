import assert from 'node:assert/strict'
import type { Json } from '../../daemon/api/server.js'
import { AdminClient } from '../../daemon/api/client.js'
import { DataDir } from '../../daemon/host/datadir.js'
import type { PoolStatus as NodePoolStatus } from '../../daemon/pool/service.js'
import type { PoolNodeView } from '../../daemon/pool/view.js'
import type { TestCluster } from './cluster.js'
import { runCli, waitFor, type CliResult } from './process.js'

type PoolNode = Json<PoolNodeView>
export type PoolStatus = Json<NodePoolStatus>

interface EvidenceView {
  member: string
  first: { statementId: string; actives: string[] }
  second: { statementId: string; actives: string[] }
}

/** What every node must agree on: the status without what is local to the node asking. */
const AGREED_FIELDS = [
  'poolId',
  'state',
  'chainHeight',
  'totalSats',
  'balances',
  'onChain',
  'members',
  'partitions',
  'tree',
  'evidenceCount',
  'equivocators',
  'kickouts'
] as const satisfies ReadonlyArray<keyof PoolStatus>

function agreed(s: PoolStatus): unknown {
  return Object.fromEntries(AGREED_FIELDS.map((k) => [k, s[k]]))
}

/** Drives the pool of a TestCluster: commands through the CLI, state through the admin API. */
export class PoolDriver {
  constructor(private readonly cluster: TestCluster) {}

  /** `poolboard ARGS --datadir <node i>`; never throws: the caller checks the exit code. */
  async run(index: number, ...args: string[]): Promise<CliResult> {
    return await runCli([...args, '--datadir', this.cluster.datadir(index)])
  }

  /** Runs a command that must succeed and returns its parsed --json output. */
  async json<T>(index: number, ...args: string[]): Promise<T> {
    const r = await this.run(index, ...args, '--json')
    assert.equal(r.code, 0, `poolboard ${args.join(' ')} on node ${index} failed: ${r.stderr.trim()}`)
    return JSON.parse(r.stdout) as T
  }

  async status(index: number): Promise<PoolStatus> {
    return await AdminClient.fromDataDir(new DataDir(this.cluster.datadir(index))).get<PoolStatus>('/v1/pool/status', {
      timeoutMs: 5_000
    })
  }

  async evidence(index: number): Promise<EvidenceView[]> {
    return (
      await AdminClient.fromDataDir(new DataDir(this.cluster.datadir(index))).get<{ evidence: EvidenceView[] }>(
        '/v1/pool/evidence',
        { timeoutMs: 5_000 }
      )
    ).evidence
  }

  /** Waits until every node in `indexes` shows the same pool and `check` holds for it; returns it. */
  async waitAgreed(
    indexes: number[],
    what: string,
    check: (s: PoolStatus) => boolean = () => true,
    timeoutMs = 60_000
  ): Promise<PoolStatus> {
    return await waitFor(
      `nodes ${indexes.join(',')} to agree on the pool (${what})`,
      async () => {
        const all = await Promise.all(indexes.map(async (i) => await this.status(i)))
        const first = JSON.stringify(agreed(all[0]))
        if (!all.every((s) => JSON.stringify(agreed(s)) === first)) return undefined
        return check(all[0]) ? all[0] : undefined
      },
      timeoutMs,
      200
    )
  }
}

/** Value is conserved: what the members hold in the pools plus what kick-outs paid on chain is the total; every pool's balances sum to its total. */
export function assertConserved(s: PoolStatus, totalSats: number): void {
  const held = Object.values(s.balances).reduce((a, b) => a + b, 0)
  const out = Object.values(s.onChain).reduce((a, b) => a + b, 0)
  assert.equal(
    held + out,
    totalSats,
    `members hold ${held} and ${out} left on chain; the pool was made with ${totalSats}`
  )
  const walk = (n: PoolNode): void => {
    assert.equal(
      n.members.reduce((a, m) => a + m.balanceSats, 0),
      n.totalSats,
      `the balances of the ${n.label} (state ${n.state}) sum to its total`
    )
    n.children.forEach(walk)
  }
  if (s.tree !== null) walk(s.tree)
}

export function find(s: PoolStatus, ref: string): Omit<PoolNode, 'children'> | undefined {
  return s.partitions.find((p) => p.ref === ref)
}
