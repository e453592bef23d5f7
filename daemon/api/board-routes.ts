import { decodeBoardEntry, encodeRawEntry, entryPayload } from '../../board/entries.js'
import { toHex } from '../../protocol/bytes.js'
import type { ConfChange, ConfEntry } from '../../board/raft/index.js'
import { ApiError, type Route } from './server.js'
import { BoardError, type BoardReplica, type BoardStatus } from '../replica/board.js'
import { formatHostPort, type MemberEntry } from '../host/config.js'

export interface BoardApiOptions {
  board: BoardReplica
  members: readonly MemberEntry[]
  lab: boolean
  /** How long a client waits for its entry to commit. */
  proposalTimeoutMs: number
}

const MAX_PAGE_ENTRIES = 1_000
const MAX_RAW_ENTRY_BYTES = 256 * 1024

/** A member as the API shows it: peer id and, where known, its name. */
export interface NamedMember {
  peerId: string
  name: string | null
}

/** GET /v1/board/status. */
export interface BoardStatusView {
  role: string
  term: number
  leader: NamedMember | null
  commit: number
  applied: number
  lastIndex: number
  snapshotIndex: number
  voters: NamedMember[]
  learners: NamedMember[]
  /** On the leader, each member's replication progress; null elsewhere. */
  progress: Array<{ member: NamedMember; match: number; next: number; state: string; learner: boolean }> | null
  alarms: number
  /** Members this node no longer follows (they offered to rewrite committed entries). */
  shunned: NamedMember[]
  quarantined: NamedMember[]
  /** The last ten alarms, byte fields in hex. */
  recentAlarms: Array<Record<string, unknown>>
}

/** The board's admin API routes: status, log, membership, transfer, and (lab only) raw entries. */
export function boardRoutes(options: BoardApiOptions): Route[] {
  const { board, lab, proposalTimeoutMs } = options
  const byPeerId = new Map(options.members.map((m) => [m.peerId, m]))
  const named = (peerId: string): NamedMember => ({ peerId, name: byPeerId.get(peerId)?.name ?? null })
  const memberByName = (text: unknown): MemberEntry => {
    if (typeof text !== 'string') throw new ApiError(400, 'bad-request', 'member: expected a member name or peer id')
    const m = options.members.find((x) => x.name === text || x.peerId === text)
    if (m === undefined)
      throw new ApiError(
        404,
        'unknown-member',
        `no member named ${text} (members: ${options.members.map((x) => x.name).join(', ')})`
      )
    return m
  }
  const boardError = (err: unknown): never => {
    if (!(err instanceof BoardError)) throw err
    if (err.code === 'not-leader') {
      const leader = err.leader === null ? undefined : byPeerId.get(err.leader)
      const where = leader?.api === undefined ? '' : ` at ${formatHostPort(leader.api)}`
      throw new ApiError(
        421,
        'not-leader',
        `this node is not the board leader; ${leader === undefined ? 'no leader is known yet' : `the leader is ${leader.name}${where}`}`,
        {
          leader: err.leader === null ? null : named(err.leader),
          leaderApi: leader?.api === undefined ? null : formatHostPort(leader.api)
        }
      )
    }
    const status = err.code === 'timeout' ? 504 : err.code === 'stopped' ? 503 : 409
    throw new ApiError(status, err.code, err.message)
  }
  const page = (query: URLSearchParams): { from: number; limit: number } => {
    const from = Number(query.get('from') ?? '1')
    const limit = Number(query.get('limit') ?? '100')
    if (!Number.isSafeInteger(from) || from < 1)
      throw new ApiError(400, 'bad-request', `from: expected an index >= 1, got ${query.get('from')}`)
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_ENTRIES)
      throw new ApiError(400, 'bad-request', `limit: expected 1 to ${MAX_PAGE_ENTRIES}`)
    return { from, limit }
  }

  return [
    {
      method: 'GET',
      path: '/v1/board/status',
      handler: async () => describeStatus(board.status(), named, board)
    },
    {
      method: 'GET',
      path: '/v1/board/log',
      handler: async ({ query }) => {
        const { from, limit } = page(query)
        const entries = await board.committedEntries(from, limit)
        return {
          applied: board.appliedIndex,
          entries: entries.map((e) => {
            const decoded = decodeBoardEntry(e)
            return {
              index: e.index,
              term: e.term,
              type: decoded.kind,
              hash: toHex(e.hash),
              bytes: e.data.length,
              ...(decoded.kind === 'config' ? describeConfEntry(decoded.change, named) : {}),
              ...(decoded.kind === 'unknown' ? { problem: decoded.reason } : {})
            }
          })
        }
      }
    },
    {
      method: 'GET',
      path: '/v1/board/entries',
      handler: async ({ query }) => {
        const { from, limit } = page(query)
        const entries = await board.committedEntries(from, limit)
        return {
          entries: entries.map((e) => {
            const decoded = decodeBoardEntry(e)
            return {
              index: e.index,
              term: e.term,
              type: decoded.kind,
              data: Buffer.from(entryPayload(e, decoded)).toString('base64')
            }
          })
        }
      }
    },
    {
      method: 'POST',
      path: '/v1/board/entries',
      handler: async ({ body }) => {
        if (!lab)
          throw new ApiError(
            403,
            'lab-only',
            'raw board entries are accepted only by nodes started in lab mode (--lab)'
          )
        // {"data"}: an opaque payload, stored as a raw entry. {"entry"}: complete board entry bytes
        // of any kind (a pre-signed statement, say), for benchmarks and attack scenarios.
        const { data, entry } = body as { data?: unknown; entry?: unknown }
        const field = entry !== undefined ? 'entry' : 'data'
        const text = entry ?? data
        if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text))
          throw new ApiError(400, 'bad-request', `${field}: expected a base64 string`)
        const bytes = Buffer.from(text, 'base64')
        if (bytes.length > MAX_RAW_ENTRY_BYTES)
          throw new ApiError(413, 'too-large', `${field}: at most ${MAX_RAW_ENTRY_BYTES} bytes`)
        try {
          return await board.propose(
            field === 'entry' ? new Uint8Array(bytes) : encodeRawEntry(bytes),
            proposalTimeoutMs
          )
        } catch (err) {
          return boardError(err)
        }
      }
    },
    {
      method: 'POST',
      path: '/v1/board/members',
      handler: async ({ body }) => {
        const { op, member, learner } = body as { op?: unknown; member?: unknown; learner?: unknown }
        const m = memberByName(member)
        const configuration = board.status().configuration
        let change: ConfChange
        if (op === 'add') {
          const isLearner = configuration.learners.includes(m.peerId)
          if (learner === true) change = { kind: 'addLearner', node: m.peerId }
          else change = { kind: isLearner ? 'promoteLearner' : 'addVoter', node: m.peerId }
        } else if (op === 'remove') {
          change = { kind: 'removeNode', node: m.peerId }
        } else {
          throw new ApiError(400, 'bad-request', 'op: expected "add" or "remove"')
        }
        try {
          const result = await board.changeMembership(change, proposalTimeoutMs)
          return { ...result, change: change.kind, member: named(m.peerId) }
        } catch (err) {
          return boardError(err)
        }
      }
    },
    {
      method: 'POST',
      path: '/v1/board/transfer',
      handler: async ({ body }) => {
        const m = memberByName((body as { to?: unknown }).to)
        try {
          board.transferLeadership(m.peerId)
        } catch (err) {
          return boardError(err)
        }
        return { transferring: named(m.peerId) }
      }
    }
  ]
}

function describeStatus(s: BoardStatus, named: (peerId: string) => NamedMember, board: BoardReplica): BoardStatusView {
  return {
    role: s.role,
    term: s.term,
    leader: s.leader === null ? null : named(s.leader),
    commit: s.commit,
    applied: s.applied,
    lastIndex: s.lastIndex,
    snapshotIndex: s.snapshotIndex,
    voters: s.configuration.voters.map(named),
    learners: s.configuration.learners.map(named),
    progress:
      s.progress === null
        ? null
        : Object.entries(s.progress).map(([peerId, p]) => ({
            member: named(peerId),
            match: p.match,
            next: p.next,
            state: p.state,
            learner: p.isLearner
          })),
    alarms: s.alarms,
    shunned: s.shunned.map(named),
    quarantined: s.quarantined.map(named),
    recentAlarms: board.recentAlarms.slice(-10).map((a) => ({ ...hexBytes(a), from: named(a.from) }))
  }
}

/** Byte fields of an alarm as hex, for JSON. */
function hexBytes(record: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, v instanceof Uint8Array ? toHex(v) : v]))
}

function describeConfEntry(change: ConfEntry, named: (peerId: string) => NamedMember): Record<string, unknown> {
  if (change.kind === 'initialize') {
    return {
      change: 'initialize',
      voters: change.configuration.voters.map(named),
      learners: change.configuration.learners.map(named)
    }
  }
  return { change: change.kind, member: named(change.node) }
}
