import { type Reader, Writer, decodeAll } from '../../protocol/codec.js'
import { BOARD_ENTRY_VERSION, ENTRY_KIND } from '../../board/entries.js'
import { BoardError, type BoardReplica } from './board.js'
import type { Logger } from '../host/log.js'
import { RpcError, type MemberRpc } from '../net/rpc.js'
import { sleep } from '../host/wait.js'

export const PROPOSE_PROTOCOL = '/poolboard/propose/1.0.0'

/** Entry kinds a member may ask the leader to propose for it: pool facts, never raw lab entries. */
const FORWARDABLE_KINDS = new Set<number>([
  ENTRY_KIND.genesis,
  ENTRY_KIND.state,
  ENTRY_KIND.statement,
  ENTRY_KIND.evidence,
  ENTRY_KIND.blocks,
  ENTRY_KIND.kickout,
  ENTRY_KIND.merge
])
const MAX_FORWARDED_ENTRY_BYTES = 1024 * 1024
const MAX_FORWARD_TIMEOUT_MS = 60_000
const LEADER_POLL_MS = 50
const MAX_HOPS = 5

/**
 * Proposes a board entry from any member: on the leader directly, elsewhere by asking the leader's
 * node over `/poolboard/propose/1.0.0`. The leader checks the kind and proposes it like its own;
 * the answer comes once the entry is committed and applied there.
 */
export class ProposalRouter {
  constructor(
    private readonly board: BoardReplica,
    private readonly rpc: MemberRpc,
    private readonly logger: Logger
  ) {}

  async start(): Promise<void> {
    await this.rpc.handle(PROPOSE_PROTOCOL, async (request, from) => {
      const { timeoutMs, data } = decodeRequest(request)
      const kind = data[0] === BOARD_ENTRY_VERSION ? data[1] : -1
      if (!FORWARDABLE_KINDS.has(kind))
        throw new RpcError('refused', `entry kind ${kind} cannot be proposed for another member`)
      try {
        const { index, term } = await this.board.propose(data, Math.min(timeoutMs, MAX_FORWARD_TIMEOUT_MS))
        this.logger.debug({ from, index }, 'proposed an entry for a member')
        return new Writer(16).varint(index).varint(term).finish()
      } catch (err) {
        if (err instanceof BoardError) throw new RpcError(err.code, err.message)
        throw err
      }
    })
  }

  /** Proposes `data` wherever the leader is; resolves once committed (and applied on the leader). */
  async propose(data: Uint8Array, timeoutMs: number): Promise<{ index: number; term: number }> {
    const deadlineMs = Date.now() + timeoutMs
    let lastError: Error = new BoardError('timeout', `no board leader within ${timeoutMs} ms`)
    for (let hop = 0; hop < MAX_HOPS && Date.now() < deadlineMs; hop++) {
      if (this.board.role === 'leader') {
        try {
          return await this.board.propose(data, deadlineMs - Date.now())
        } catch (err) {
          if (err instanceof BoardError && err.code === 'not-leader') {
            lastError = err
            continue
          }
          throw err
        }
      }
      const leader = this.board.leader
      if (leader === null) {
        await sleep(LEADER_POLL_MS)
        hop--
        continue
      }
      try {
        const remainingMs = Math.max(1, deadlineMs - Date.now())
        const response = await this.rpc.call(
          leader,
          PROPOSE_PROTOCOL,
          encodeRequest(data, remainingMs),
          remainingMs + 1_000
        )
        return decodeAll(response, 'propose response', (r: Reader) => ({
          index: r.varint('index'),
          term: r.varint('term')
        }))
      } catch (err) {
        if (!(err instanceof RpcError)) throw err
        if (err.code === 'not-leader' || err.code === 'unreachable') {
          lastError = new BoardError('not-leader', err.message)
          await sleep(LEADER_POLL_MS)
          continue
        }
        const code =
          err.code === 'timeout' || err.code === 'superseded' || err.code === 'stopped' ? err.code : 'refused'
        throw new BoardError(code, `the leader answered: ${err.message}`)
      }
    }
    throw lastError
  }
}

function encodeRequest(data: Uint8Array, timeoutMs: number): Uint8Array {
  return new Writer(data.length + 16)
    .u8(1)
    .varint(Math.round(timeoutMs))
    .bytes(data, MAX_FORWARDED_ENTRY_BYTES, 'data')
    .finish()
}

function decodeRequest(bytes: Uint8Array): { timeoutMs: number; data: Uint8Array } {
  return decodeAll(bytes, 'propose request', (r: Reader) => {
    r.version([1])
    return {
      timeoutMs: r.varint('timeoutMs', MAX_FORWARD_TIMEOUT_MS * 10),
      data: r.bytes('data', MAX_FORWARDED_ENTRY_BYTES)
    }
  })
}
