import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cli, cliJson, isAlive, runCli, tempDir, waitFor } from './process.js'

import type { ClusterNodeState } from '../../daemon/cluster/index.js'

/** One node as `cluster status --json` shows it. */
type NodeState = ClusterNodeState

/**
 * A local cluster of real node processes in a temporary directory. `destroy()` stops every node
 * (SIGKILL for any that outlive `cluster down`) and removes the directory, so no test leaves a
 * process behind.
 */
export class TestCluster {
  private readonly temp = tempDir('poolboard-cluster-')
  readonly dir = join(this.temp.path, 'cluster')
  private readonly seenPids = new Set<number>()

  static async up(nodes: number, extraArgs: string[] = []): Promise<TestCluster> {
    const cluster = new TestCluster()
    try {
      await cli(['cluster', 'up', '--nodes', String(nodes), '--dir', cluster.dir, ...extraArgs])
      await cluster.status()
    } catch (err) {
      await cluster.destroy()
      throw err
    }
    return cluster
  }

  async status(): Promise<NodeState[]> {
    const { nodes } = await cliJson<{ nodes: NodeState[] }>(['cluster', 'status', '--dir', this.dir])
    for (const n of nodes) if (n.pid !== null) this.seenPids.add(n.pid)
    return nodes
  }

  async node(index: number): Promise<NodeState> {
    const node = (await this.status()).find((n) => n.index === index)
    if (node === undefined) throw new Error(`no node ${index}`)
    return node
  }

  async run(...args: string[]): Promise<string> {
    return await cli(['cluster', ...args, '--dir', this.dir])
  }

  datadir(index: number): string {
    return join(this.dir, `node${index}`)
  }

  log(index: number): string {
    return readFileSync(join(this.datadir(index), 'logs', 'poolboard.log'), 'utf8')
  }

  /** Waits until every running node is connected to every other running node. */
  async waitFullyConnected(timeoutMs = 30_000): Promise<NodeState[]> {
    return await waitFor(
      'every running node to be connected to every other',
      async () => {
        const nodes = await this.status()
        const live = nodes.filter((n) => n.running && !n.cut)
        return live.every((n) => n.connectedPeers === live.length - 1) ? nodes : undefined
      },
      timeoutMs
    )
  }

  async destroy(): Promise<void> {
    await runCli(['cluster', 'down', '--dir', this.dir]).catch(() => undefined)
    for (const pid of this.seenPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
    this.temp.cleanup()
  }
}
