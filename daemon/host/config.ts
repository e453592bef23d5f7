import { isIP } from 'node:net'
import { MAX_MEMBERS } from '../../protocol/limits.js'
import { UserError } from './errors.js'

// daemon/host/: the process's surroundings: the config file (this file), the data directory and
// keys, logs, errors, waits, terminal tables and the event source. Imports nothing else of daemon/.

/** `poolboard.conf`: plain `key=value` lines, `#` comments, `member` repeated; flags override it. */
export const CONFIG_FILE = 'poolboard.conf'

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
/** The parts of the node whose debug lines can be switched on by themselves (`debug=`, `start --debug`). */
export const LOG_CATEGORIES = ['net', 'board', 'pool', 'defense'] as const
export type LogCategory = (typeof LOG_CATEGORIES)[number]

export interface HostPort {
  host: string
  port: number
}

/** Another member of the pool as this node knows it: a label, a libp2p peer id, where to dial it. */
export interface MemberEntry {
  name: string
  peerId: string
  address: HostPort
  /** Its admin API, when it runs on this machine (local clusters): named in "ask the leader" errors. */
  api?: HostPort
}

export interface NodeConfig {
  /** A label for this member in tables and logs. */
  name: string
  /** Where libp2p listens for the other members. */
  listen: HostPort
  /** Where the admin API listens; loopback only. */
  api: HostPort
  logLevel: LogLevel
  /** Categories logged at debug level whatever logLevel says. */
  debug: LogCategory[]
  /** Every member of the pool, this node included; only these peer ids may connect. */
  members: MemberEntry[]
  /** Lab mode: enables the test-only and adversarial features. Never on a real pool. */
  lab: boolean
  board: BoardConfig
  /** The simulated chain: the board leader mines one block every this many seconds; 0 = never. */
  blockIntervalS: number
  /** Defenses against a coalition of board hosts that hides a statement (docs/lab.md); each on by default. */
  defenses: DefenseConfig
  /** Lab mode only: this node is in a coalition that rewrote its board log (daemon/lab/); it defends nothing and lies. */
  labCoalition: boolean
  /** Lab mode only: answer the defenses' questions (digest, statements) after this many ms, to set who answers first. */
  labAnswerDelayMs: number
}

export interface DefenseConfig {
  /** Before signing a partition, compare the board history with a majority of members, not the leader alone. */
  quorumRead: boolean
  /** Compare entry hashes (not only terms); a leader rewriting a committed entry becomes a proof sent to every member. */
  hashChain: boolean
  /** Before signing a partition, ask every reachable member for statements spending the same outputs. */
  gossipCheck: boolean
  /** Broadcast equivocation evidence and refuse to sign for a member proven to equivocate. */
  evidence: boolean
}

export interface BoardConfig {
  /** One Raft tick. Heartbeats and election timeouts are counted in ticks. */
  tickMs: number
  /** The leader sends a heartbeat every this many ticks. */
  heartbeatTicks: number
  /** A follower that hears no leader for a random [1x, 2x) of this many ticks starts an election. */
  electionTicks: number
  /**
   * While the board is quiet (nothing to replicate, nothing pending) one tick lasts this long
   * instead of `tickMs`: heartbeats and election timeouts stretch by the same factor. 0: never.
   */
  idleTickMs: number
  /** Snapshot (compact the in-memory log) every this many applied entries. */
  snapshotEveryEntries: number
  /** Names of the members that vote on the new board; null: every member. The others are learners. */
  voters: string[] | null
  /** Voters that may lie (docs/raft.md, "Lying voters"): larger quorums, commits proven by signed acknowledgements. */
  faultyVoters: number
}

interface Setting {
  key: string
  defaultText: string
  help: string
  /** Applies one line's value to the config being built; throws a plain Error naming what is wrong. */
  apply: (config: NodeConfig, value: string) => void
  /** Lines for this setting in a rendered config file. */
  render: (config: NodeConfig) => string[]
}

const MAX_NAME_CHARS = 32
const MAX_CONFIG_BYTES = 256 * 1024
const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/
const PEER_ID_PATTERN = /^[1-9A-HJ-NP-Za-km-z]{32,128}$/ // base58btc

export function defaultConfig(): NodeConfig {
  return {
    name: 'node',
    listen: { host: '0.0.0.0', port: 7700 },
    api: { host: '127.0.0.1', port: 7701 },
    logLevel: 'info',
    debug: [],
    members: [],
    lab: false,
    board: {
      tickMs: 25,
      heartbeatTicks: 2,
      electionTicks: 20,
      idleTickMs: 500,
      snapshotEveryEntries: 10_000,
      voters: null,
      faultyVoters: 0
    },
    blockIntervalS: 600,
    defenses: { quorumRead: true, hashChain: true, gossipCheck: true, evidence: true },
    labCoalition: false,
    labAnswerDelayMs: 0
  }
}

/** The defense settings, by config key. */
const DEFENSE_KEYS = {
  'defense-quorum-read': 'quorumRead',
  'defense-hash-chain': 'hashChain',
  'defense-gossip-check': 'gossipCheck',
  'defense-evidence': 'evidence'
} as const satisfies Record<string, keyof DefenseConfig>

const DEFENSE_HELP: Record<keyof DefenseConfig, string> = {
  quorumRead:
    'before signing a partition (and after catching up), compare the board history with a majority of members, not only the leader (1 on, 0 off)',
  hashChain:
    'compare board entry hashes, not only terms; a leader that rewrites a committed entry becomes a proof sent to every member (1 on, 0 off)',
  gossipCheck:
    'before signing a partition, ask every reachable member for statements spending the same outputs (1 on, 0 off)',
  evidence: 'broadcast equivocation evidence and refuse to sign for a member proven to equivocate (1 on, 0 off)'
}

const MAX_LAB_ANSWER_DELAY_MS = 10_000

export const SETTINGS: readonly Setting[] = [
  {
    key: 'name',
    defaultText: 'node',
    help: `a label for this member in tables and logs (letters, digits, "._-", at most ${MAX_NAME_CHARS})`,
    apply: (c, v) => {
      c.name = parseName(v)
    },
    render: (c) => [`name=${c.name}`]
  },
  {
    key: 'listen',
    defaultText: '0.0.0.0:7700',
    help: 'host:port where libp2p listens for the other members (only members may connect)',
    apply: (c, v) => {
      c.listen = parseHostPort(v)
    },
    render: (c) => [`listen=${formatHostPort(c.listen)}`]
  },
  {
    key: 'api',
    defaultText: '127.0.0.1:7701',
    help: 'host:port of the admin API (HTTP JSON, cookie auth); must be a loopback address',
    apply: (c, v) => {
      const api = parseHostPort(v)
      if (!isLoopback(api.host))
        throw new Error(`the admin API must listen on loopback (127.0.0.1 or ::1), not ${api.host}`)
      c.api = api
    },
    render: (c) => [`api=${formatHostPort(c.api)}`]
  },
  {
    key: 'log-level',
    defaultText: 'info',
    help: `one of ${LOG_LEVELS.join(', ')}`,
    apply: (c, v) => {
      c.logLevel = parseLogLevel(v)
    },
    render: (c) => [`log-level=${c.logLevel}`]
  },
  {
    key: 'debug',
    defaultText: 'none',
    help: `log these parts at debug level, comma-separated: ${LOG_CATEGORIES.join(', ')} or all`,
    apply: (c, v) => {
      c.debug = parseCategories(v)
    },
    render: (c) => (c.debug.length === 0 ? ['# debug=net,board,pool,defense'] : [`debug=${c.debug.join(',')}`])
  },
  {
    key: 'member',
    defaultText: '(none)',
    help: 'a pool member, one line each, this node included: NAME PEERID HOST:PORT [API-HOST:PORT on this machine]',
    apply: (c, v) => {
      if (c.members.length >= MAX_MEMBERS) throw new Error(`at most ${MAX_MEMBERS} members`)
      const member = parseMember(v)
      if (c.members.some((m) => m.peerId === member.peerId)) throw new Error(`member ${member.peerId} is listed twice`)
      if (c.members.some((m) => m.name === member.name)) throw new Error(`member name ${member.name} is used twice`)
      c.members.push(member)
    },
    render: (c) =>
      c.members.map(
        (m) =>
          `member=${m.name} ${m.peerId} ${formatHostPort(m.address)}${m.api === undefined ? '' : ' ' + formatHostPort(m.api)}`
      )
  },
  {
    key: 'tick-ms',
    defaultText: '25',
    help: 'one Raft tick in ms; on the internet use 100',
    apply: (c, v) => {
      c.board = { ...c.board, tickMs: parseInteger(v, 1, 10_000) }
    },
    render: (c) => [`tick-ms=${c.board.tickMs}`]
  },
  {
    key: 'heartbeat-ticks',
    defaultText: '2',
    help: 'the board leader sends a heartbeat every this many ticks (about one network round trip)',
    apply: (c, v) => {
      c.board = { ...c.board, heartbeatTicks: parseInteger(v, 1, 1_000) }
    },
    render: (c) => [`heartbeat-ticks=${c.board.heartbeatTicks}`]
  },
  {
    key: 'election-ticks',
    defaultText: '20',
    help: 'a member that hears no leader for a random 1x to 2x this many ticks starts an election; at least 5 heartbeats',
    apply: (c, v) => {
      c.board = { ...c.board, electionTicks: parseInteger(v, 2, 100_000) }
    },
    render: (c) => [`election-ticks=${c.board.electionTicks}`]
  },
  {
    key: 'idle-tick-ms',
    defaultText: '500',
    help: 'one Raft tick in ms while the board is quiet (heartbeats and elections slow down alike); 0 = always tick-ms',
    apply: (c, v) => {
      c.board = { ...c.board, idleTickMs: parseInteger(v, 0, 60_000) }
    },
    render: (c) => [`idle-tick-ms=${c.board.idleTickMs}`]
  },
  {
    key: 'snapshot-entries',
    defaultText: '10000',
    help: 'compact the in-memory Raft log every this many applied entries (the history stays on disk)',
    apply: (c, v) => {
      c.board = { ...c.board, snapshotEveryEntries: parseInteger(v, 1, 100_000_000) }
    },
    render: (c) => [`snapshot-entries=${c.board.snapshotEveryEntries}`]
  },
  {
    key: 'faulty-voters',
    defaultText: '0',
    help: 'voters that may lie (f): quorums of (n + f) / 2 + 1 of the n voters, commits proven by signed acknowledgements; the same on every member (docs/raft.md, "Lying voters")',
    apply: (c, v) => {
      c.board = { ...c.board, faultyVoters: parseInteger(v, 0, 100) }
    },
    render: (c) => [`faulty-voters=${c.board.faultyVoters}`]
  },
  {
    key: 'voters',
    defaultText: 'every member',
    help: 'comma-separated member names that vote on a new board (5 or 7 in a large pool); the others are learners',
    apply: (c, v) => {
      c.board = { ...c.board, voters: v === '' ? null : v.split(',').map((n) => parseName(n.trim())) }
    },
    render: (c) => (c.board.voters === null ? ['# voters=NAME,NAME,...'] : [`voters=${c.board.voters.join(',')}`])
  },
  {
    key: 'block-interval-s',
    defaultText: '600',
    help: 'the simulated chain: the board leader mines one block every this many seconds (0 = only `chain mine`)',
    apply: (c, v) => {
      c.blockIntervalS = parseInteger(v, 0, 86_400)
    },
    render: (c) => [`block-interval-s=${c.blockIntervalS}`]
  },
  {
    key: 'lab',
    defaultText: '0',
    help: 'lab mode (1) enables raw board entries and adversarial behaviours; never on a real pool',
    apply: (c, v) => {
      c.lab = parseBool(v)
    },
    render: (c) => [`lab=${c.lab ? 1 : 0}`]
  },
  ...Object.entries(DEFENSE_KEYS).map(
    ([key, field]): Setting => ({
      key,
      defaultText: '1',
      help: DEFENSE_HELP[field],
      apply: (c, v) => {
        c.defenses = { ...c.defenses, [field]: parseBool(v) }
      },
      render: (c) => [`${key}=${c.defenses[field] ? 1 : 0}`]
    })
  ),
  {
    key: 'lab-coalition',
    defaultText: '0',
    help: 'lab mode only: this node belongs to a coalition that rewrote its board log (poolboard lab drop); it defends nothing and lies when asked',
    apply: (c, v) => {
      c.labCoalition = parseBool(v)
    },
    render: (c) => [`lab-coalition=${c.labCoalition ? 1 : 0}`]
  },
  {
    key: 'lab-answer-delay-ms',
    defaultText: '0',
    help: `lab mode only: answer the defenses' questions after this many ms (0 to ${MAX_LAB_ANSWER_DELAY_MS}), to choose who answers first`,
    apply: (c, v) => {
      c.labAnswerDelayMs = parseInteger(v, 0, MAX_LAB_ANSWER_DELAY_MS)
    },
    render: (c) => [`lab-answer-delay-ms=${c.labAnswerDelayMs}`]
  }
]

/** Parses a config file's text. `source` names the file in error messages. */
export function parseConfig(text: string, source: string): NodeConfig {
  const config = parseLines(text, source)
  const problem = checkConfig(config)
  if (problem !== null) throw new UserError(`${source}: ${problem}`)
  return config
}

/** Rules that span settings. */
function checkConfig(config: NodeConfig): string | null {
  const { board } = config
  // Adversarial behaviour exists only in lab mode.
  if (!config.lab && config.labCoalition)
    return 'lab-coalition=1 needs lab mode (lab=1): a coalition member is an adversarial behaviour'
  if (!config.lab && config.labAnswerDelayMs > 0) return 'lab-answer-delay-ms needs lab mode (lab=1)'
  if (board.heartbeatTicks * 5 > board.electionTicks) {
    return `election-ticks (${board.electionTicks}) must be at least 5 heartbeats (heartbeat-ticks ${board.heartbeatTicks} x 5)`
  }
  if (board.idleTickMs !== 0 && board.idleTickMs < board.tickMs)
    return `idle-tick-ms (${board.idleTickMs}) must be 0 or at least tick-ms (${board.tickMs})`
  if (board.voters !== null) {
    const names = new Set(config.members.map((m) => m.name))
    const unknown = board.voters.filter((v) => !names.has(v))
    if (config.members.length > 0 && unknown.length > 0)
      return `voters lists ${unknown.join(', ')}, not in the member list`
  }
  return null
}

function parseLines(text: string, source: string): NodeConfig {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES)
    throw new UserError(`${source}: larger than ${MAX_CONFIG_BYTES} bytes`)
  const config = defaultConfig()
  const seen = new Set<string>()
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq <= 0) throw new UserError(`${source}:${i + 1}: expected key=value, got "${line}"`)
    const key = line.slice(0, eq).trim()
    const value = line.slice(eq + 1).trim()
    const setting = SETTINGS.find((s) => s.key === key)
    if (setting === undefined) {
      throw new UserError(
        `${source}:${i + 1}: unknown setting "${key}" (known: ${SETTINGS.map((s) => s.key).join(', ')})`
      )
    }
    if (key !== 'member' && seen.has(key)) throw new UserError(`${source}:${i + 1}: "${key}" is set twice`)
    seen.add(key)
    try {
      setting.apply(config, value)
    } catch (err) {
      throw new UserError(`${source}:${i + 1}: ${key}: ${(err as Error).message}`)
    }
  }
  return config
}

/** Applies command-line overrides (`--listen`, `--api`, ...) by the same rules as the file. */
export function applyOverrides(config: NodeConfig, overrides: Record<string, string | undefined>): NodeConfig {
  const result: NodeConfig = {
    ...config,
    debug: [...config.debug],
    members: [...config.members],
    board: { ...config.board },
    defenses: { ...config.defenses }
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue
    const setting = SETTINGS.find((s) => s.key === key)
    if (setting === undefined) throw new UserError(`unknown setting "${key}"`)
    try {
      setting.apply(result, value)
    } catch (err) {
      throw new UserError(`--${key}: ${(err as Error).message}`)
    }
  }
  const problem = checkConfig(result)
  if (problem !== null) throw new UserError(problem)
  return result
}

/** Why `value` is not valid for setting `key` (by the config file's rules), or null. */
export function checkSetting(key: string, value: string): string | null {
  const setting = SETTINGS.find((s) => s.key === key)
  if (setting === undefined) return `unknown setting (known: ${SETTINGS.map((s) => s.key).join(', ')})`
  try {
    setting.apply(defaultConfig(), value)
    return null
  } catch (err) {
    return (err as Error).message
  }
}

/** Renders a config file that documents every setting and its default. */
export function renderConfig(config: NodeConfig): string {
  const out = [
    '# poolboard node configuration: key=value, one per line. Flags given to `poolboard start` override these.',
    ''
  ]
  for (const s of SETTINGS) {
    out.push(`# ${s.key}: ${s.help} (default: ${s.defaultText})`)
    out.push(...s.render(config))
    out.push('')
  }
  return out.join('\n')
}

export function parseHostPort(text: string): HostPort {
  const match = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(text)
  if (match === null) throw new Error(`expected HOST:PORT, got "${text}"`)
  const host = match[1]
  const port = Number(match[2])
  if (isIP(host) === 0) throw new Error(`"${host}" is not an IP address`)
  if (port > 65535) throw new Error(`port ${port} is above 65535`)
  return { host, port }
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`
}

function isLoopback(host: string): boolean {
  return host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** The libp2p multiaddr of a host:port on TCP. */
export function tcpMultiaddr(hp: HostPort): string {
  return `/ip${isIP(hp.host) === 6 ? '6' : '4'}/${hp.host}/tcp/${hp.port}`
}

function parseName(text: string): string {
  if (text.length === 0 || text.length > MAX_NAME_CHARS || !NAME_PATTERN.test(text)) {
    throw new Error(`"${text}" is not a valid name (letters, digits, "._-", 1 to ${MAX_NAME_CHARS} characters)`)
  }
  return text
}

function parseLogLevel(text: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === text)
  if (level === undefined) throw new Error(`"${text}" is not one of ${LOG_LEVELS.join(', ')}`)
  return level
}

function parseCategories(text: string): LogCategory[] {
  if (text.trim() === '') return []
  if (text.trim() === 'all') return [...LOG_CATEGORIES]
  return [
    ...new Set(
      text.split(',').map((t) => {
        const cat = LOG_CATEGORIES.find((c) => c === t.trim())
        if (cat === undefined) throw new Error(`"${t.trim()}" is not one of ${LOG_CATEGORIES.join(', ')}, all`)
        return cat
      })
    )
  ]
}

function parseInteger(text: string, min: number, max: number): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new Error(`expected a whole number from ${min} to ${max}, got "${text}"`)
  return n
}

function parseBool(text: string): boolean {
  if (text === '1' || text === 'true') return true
  if (text === '0' || text === 'false') return false
  throw new Error(`expected 0 or 1, got "${text}"`)
}

function parseMember(text: string): MemberEntry {
  const parts = text.split(/\s+/)
  if (parts.length !== 3 && parts.length !== 4)
    throw new Error(`expected NAME PEERID HOST:PORT [API-HOST:PORT], got "${text}"`)
  const [name, peerId, address, api] = parts
  if (!PEER_ID_PATTERN.test(peerId)) throw new Error(`"${peerId}" is not a libp2p peer id`)
  const member: MemberEntry = { name: parseName(name), peerId, address: parseHostPort(address) }
  if (api !== undefined) member.api = parseHostPort(api)
  return member
}
