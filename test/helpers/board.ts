import type { BoardStatusView } from '../../daemon/api/board-routes.js'
import { AdminClient, ApiCallError } from '../../daemon/api/client.js'
import { DataDir } from '../../daemon/host/datadir.js'
import type { TestCluster } from './cluster.js'
import { runCli, waitFor } from './process.js'

export interface CommittedEntry {
  index: number
  term: number
  type: string
  data: string
}

/** Talks to the boards of a TestCluster's nodes through their admin APIs. */
export class BoardClient {
  constructor(private readonly cluster: TestCluster) {}

  client(index: number): AdminClient {
    return AdminClient.fromDataDir(new DataDir(this.cluster.datadir(index)))
  }

  async status(index: number): Promise<BoardStatusView> {
    return await this.client(index).get<BoardStatusView>('/v1/board/status', { timeoutMs: 5_000 })
  }

  /** Board status of every running node, by node index. */
  async statuses(): Promise<Map<number, BoardStatusView>> {
    return new Map([...(await this.nodeStatuses())].map(([index, { status }]) => [index, status]))
  }

  /** Board status and peer id of every running node that answers, by node index. */
  private async nodeStatuses(): Promise<Map<number, { peerId: string; status: BoardStatusView }>> {
    const out = new Map<number, { peerId: string; status: BoardStatusView }>()
    for (const n of await this.cluster.status()) {
      if (!n.running) continue
      try {
        out.set(n.index, { peerId: n.peerId, status: await this.status(n.index) })
      } catch {
        /* starting or stopping */
      }
    }
    return out
  }

  /**
   * The node index of the leader that a majority of the answering nodes agree on: it says it leads,
   * and more than half of the statuses name it as their leader. With `among`, only a leader in it.
   */
  async waitForLeader(timeoutMs = 30_000, among?: number[]): Promise<number> {
    return await waitFor(
      'a board leader',
      async () => {
        const statuses = await this.nodeStatuses()
        for (const [index, { peerId, status }] of statuses) {
          if (status.role !== 'leader' || (among !== undefined && !among.includes(index))) continue
          const agreeing = [...statuses.values()].filter((s) => s.status.leader?.peerId === peerId).length
          if (agreeing > statuses.size / 2) return index
        }
        return undefined
      },
      timeoutMs
    )
  }

  /**
   * Asks whoever leads to hand the lead to node `target` until it leads (a transfer can be aborted,
   * or an election can intervene), or until `until()` holds.
   */
  async transferLeadTo(
    target: number,
    options: { until?: () => Promise<boolean>; timeoutMs?: number; intervalMs?: number } = {}
  ): Promise<void> {
    await waitFor(
      `node${target} to take the lead`,
      async () => {
        if (options.until !== undefined && (await options.until())) return true
        const current = await this.waitForLeader(30_000)
        if (current === target) return true
        await runCli(['board', 'transfer', `node${target}`, '--datadir', this.cluster.datadir(current)])
        return false
      },
      options.timeoutMs ?? 90_000,
      options.intervalMs ?? 1_000
    )
  }

  /** Appends on node `index`; throws the API's error. */
  async appendOn(index: number, text: string, timeoutMs = 15_000): Promise<{ index: number; term: number }> {
    return await this.client(index).post<{ index: number; term: number }>(
      '/v1/board/entries',
      { data: Buffer.from(text).toString('base64') },
      { timeoutMs }
    )
  }

  /**
   * Appends through whichever node leads, following not-leader answers. Returns undefined if the
   * entry was not acknowledged (it may or may not be committed: the caller must not count it).
   */
  async append(text: string, candidates: number[]): Promise<{ index: number; term: number } | undefined> {
    for (const index of candidates) {
      try {
        return await this.appendOn(index, text)
      } catch (err) {
        if (err instanceof ApiCallError && err.code === 'not-leader') continue
        return undefined
      }
    }
    return undefined
  }

  /** Every committed entry applied on node `index`. */
  async entries(index: number, type?: string): Promise<CommittedEntry[]> {
    const out: CommittedEntry[] = []
    for (let from = 1; ; from += 1000) {
      const page = await this.client(index).get<{ entries: CommittedEntry[] }>(
        `/v1/board/entries?from=${from}&limit=1000`,
        { timeoutMs: 10_000 }
      )
      out.push(...page.entries)
      if (page.entries.length < 1000) break
    }
    return type === undefined ? out : out.filter((e) => e.type === type)
  }

  /** Waits until every node in `indexes` has applied at least `index`. */
  async waitApplied(indexes: number[], index: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `nodes ${indexes.join(',')} to apply index ${index}`,
      async () => {
        for (const i of indexes) if ((await this.status(i)).applied < index) return false
        return true
      },
      timeoutMs
    )
  }
}

export function text(entry: CommittedEntry): string {
  return Buffer.from(entry.data, 'base64').toString('utf8')
}
