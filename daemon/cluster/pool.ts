import { AdminClient, ApiCallError } from '../api/client.js'
import type { CreateResult, Json } from '../api/types.js'
import type { LocalCluster } from './index.js'
import { UserError } from '../host/errors.js'
import type { Progress } from '../host/table.js'
import { sleep } from '../host/wait.js'

/** `cluster up --pool`: create the pool among the cluster's nodes and wait until every node shows it. */

const POLL_MS = 200
const CREATE_TIMEOUT_MS = 20_000
/** Answers that mean "not yet" right after start-up: no board leader, a member not answering hello yet. */
const RETRYABLE = new Set(['timeout', 'no-leader', 'round-failed', 'busy'])

interface PoolStatusLite {
  poolId: string | null
  state: number | null
}

export async function ensureClusterPool(
  cluster: LocalCluster,
  options: { balanceSats: string; kickoutDelayBlocks: number; deadlineMs: number; progress: Progress }
): Promise<string> {
  const { deadlineMs, progress } = options
  const indexes = cluster.indexes().filter((i) => cluster.runningPid(i) !== undefined)
  if (indexes.length === 0) throw new UserError('no node of the cluster is running')
  const creator = AdminClient.fromDataDir(cluster.dataDir(indexes[0]))
  let poolId = (await creator.get<PoolStatusLite>('/v1/pool/status')).poolId
  let lastError = ''
  while (poolId === null) {
    progress.update(`creating the pool on node ${indexes[0]}${lastError === '' ? '' : ` (${lastError})`}`)
    try {
      poolId = (
        await creator.post<Json<CreateResult>>(
          '/v1/pool/create',
          {
            balanceSats: options.balanceSats,
            kickoutDelayBlocks: options.kickoutDelayBlocks,
            timeoutMs: CREATE_TIMEOUT_MS
          },
          { timeoutMs: CREATE_TIMEOUT_MS + 30_000 }
        )
      ).poolId
    } catch (err) {
      if (!(err instanceof ApiCallError)) throw err
      if (err.code === 'exists') {
        poolId = (await creator.get<PoolStatusLite>('/v1/pool/status')).poolId
        continue
      }
      if (!RETRYABLE.has(err.code) || Date.now() >= deadlineMs) {
        progress.done()
        throw new UserError(`could not create the pool: ${err.message}`)
      }
      lastError = err.message
      await sleep(POLL_MS)
    }
  }
  for (;;) {
    const seen = await Promise.all(
      indexes.map(async (i) => {
        try {
          return (
            (
              await AdminClient.fromDataDir(cluster.dataDir(i)).get<PoolStatusLite>('/v1/pool/status', {
                timeoutMs: 2_000
              })
            ).poolId === poolId
          )
        } catch {
          return false
        }
      })
    )
    const count = seen.filter((x) => x).length
    progress.update(`pool ${poolId.slice(0, 16)}: ${count}/${indexes.length} nodes show it`)
    if (count === indexes.length) {
      progress.done()
      return poolId
    }
    if (Date.now() >= deadlineMs) {
      progress.done()
      throw new UserError(
        `pool ${poolId.slice(0, 16)} was created but nodes ${indexes.filter((_, k) => !seen[k]).join(', ')} do not show it yet`
      )
    }
    await sleep(POLL_MS)
  }
}
