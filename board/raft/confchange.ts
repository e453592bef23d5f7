// Membership changes: one voter or learner added, removed, promoted or demoted at a time.
//
// A change takes effect on a node as soon as its entry is in that node's log (appended), and is
// reverted if the entry is truncated. Because consecutive configurations differ by one voter at
// most, any quorum of the old configuration intersects any quorum of the new one.
//
// The founding configuration is itself entry 1 of every log (kind 'initialize', term 1, see
// bootstrapState in raft.ts), so a node that joins later rebuilds every configuration by replaying
// the log from index 1, or gets it from a snapshot.
//
// Binary encoding of a confChange entry's data (big-endian); nothing may follow:
//   u8 version = 1
//   u8 kind: 1 addVoter, 2 addLearner, 3 promoteLearner, 4 demoteVoter, 5 removeNode, 6 initialize
//   kinds 1-5: id
//   kind 6:    u16 voter count, that many ids, u16 learner count, that many ids
// where id = u16 byte length L (1..1024), then L bytes of UTF-8.

import { ConfChangeError } from './errors.js'
import type { Configuration, NodeId } from './types.js'
import { MAX_MEMBERS } from '../../protocol/limits.js'

export type ConfChangeKind = 'addVoter' | 'addLearner' | 'promoteLearner' | 'demoteVoter' | 'removeNode'

/** A change a leader can propose. */
export interface ConfChange {
  readonly kind: ConfChangeKind
  readonly node: NodeId
}

/** What a confChange entry holds: a change, or the founding configuration (entry 1 only). */
export type ConfEntry = ConfChange | { readonly kind: 'initialize'; readonly configuration: Configuration }

const VERSION = 1
const KIND_CODES: Record<ConfEntry['kind'], number> = {
  addVoter: 1,
  addLearner: 2,
  promoteLearner: 3,
  demoteVoter: 4,
  removeNode: 5,
  initialize: 6
}
const KINDS_BY_CODE: readonly (ConfEntry['kind'] | undefined)[] = [
  undefined,
  'addVoter',
  'addLearner',
  'promoteLearner',
  'demoteVoter',
  'removeNode',
  'initialize'
]
/** Longest node id, in UTF-8 bytes (the encoding's limit; also checked on the config's id and in storage). */
export const MAX_NODE_ID_BYTES = 1024
/** Most members a configuration may list: the pool's own limit. */
export { MAX_MEMBERS }

const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder('utf-8', { fatal: true })

class Writer {
  private readonly parts: number[] = []
  u8(v: number): void {
    this.parts.push(v & 0xff)
  }
  u16(v: number): void {
    this.parts.push((v >>> 8) & 0xff, v & 0xff)
  }
  id(node: NodeId): void {
    const b = utf8.encode(node)
    if (b.length === 0 || b.length > MAX_NODE_ID_BYTES) {
      throw new ConfChangeError(`node id must be 1..${MAX_NODE_ID_BYTES} bytes, got ${b.length}`)
    }
    this.u16(b.length)
    for (const x of b) this.parts.push(x)
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts)
  }
}

class Reader {
  private at = 0
  constructor(private readonly b: Uint8Array) {}
  u8(field: string): number {
    if (this.at + 1 > this.b.length) throw new ConfChangeError(`${field}: truncated`)
    return this.b[this.at++]!
  }
  u16(field: string): number {
    if (this.at + 2 > this.b.length) throw new ConfChangeError(`${field}: truncated`)
    const v = (this.b[this.at]! << 8) | this.b[this.at + 1]!
    this.at += 2
    return v
  }
  id(field: string): NodeId {
    const len = this.u16(`${field} length`)
    if (len === 0 || len > MAX_NODE_ID_BYTES) throw new ConfChangeError(`${field} length: ${len} out of range`)
    if (this.at + len > this.b.length) throw new ConfChangeError(`${field}: truncated`)
    const start = this.at
    this.at += len
    try {
      return utf8Strict.decode(this.b.subarray(start, this.at))
    } catch {
      throw new ConfChangeError(`${field}: not valid UTF-8`)
    }
  }
  end(): void {
    if (this.at !== this.b.length) throw new ConfChangeError(`${this.b.length - this.at} trailing bytes`)
  }
}

export function encodeConfEntry(ce: ConfEntry): Uint8Array {
  const code = KIND_CODES[ce.kind]
  if (code === undefined) throw new ConfChangeError(`kind: unknown ${String(ce.kind)}`)
  const w = new Writer()
  w.u8(VERSION)
  w.u8(code)
  if (ce.kind === 'initialize') {
    const c = normalizeConfiguration(ce.configuration)
    const problem = checkConfiguration(c)
    if (problem !== null) throw new ConfChangeError(`initialize: ${problem}`)
    w.u16(c.voters.length)
    for (const v of c.voters) w.id(v)
    w.u16(c.learners.length)
    for (const l of c.learners) w.id(l)
  } else {
    w.id(ce.node)
  }
  return w.bytes()
}

export function decodeConfEntry(data: Uint8Array): ConfEntry {
  const r = new Reader(data)
  const version = r.u8('version')
  if (version !== VERSION) throw new ConfChangeError(`version: unsupported ${version}`)
  const code = r.u8('kind')
  const kind = KINDS_BY_CODE[code]
  if (kind === undefined) throw new ConfChangeError(`kind: unknown code ${code}`)
  let out: ConfEntry
  if (kind === 'initialize') {
    const voters: NodeId[] = []
    const learners: NodeId[] = []
    const nv = r.u16('voter count')
    if (nv > MAX_MEMBERS) throw new ConfChangeError(`voter count: ${nv} exceeds ${MAX_MEMBERS}`)
    for (let i = 0; i < nv; i++) voters.push(r.id('voter id'))
    const nl = r.u16('learner count')
    if (nv + nl > MAX_MEMBERS) throw new ConfChangeError(`learner count: ${nl} exceeds ${MAX_MEMBERS} members`)
    for (let i = 0; i < nl; i++) learners.push(r.id('learner id'))
    const configuration = { voters, learners }
    const problem = checkConfiguration(configuration)
    if (problem !== null) throw new ConfChangeError(`initialize: ${problem}`)
    out = { kind, configuration: normalizeConfiguration(configuration) }
  } else {
    out = { kind, node: r.id('node id') }
  }
  r.end()
  return out
}

/**
 * Checks `ce` against `config`; returns a description of the problem, or null if valid.
 * Rules: one member changes at a time; the last voter cannot be removed or demoted; the founding
 * configuration can only be set on an empty one and must have a voter.
 */
export function validateConfEntry(config: Configuration, ce: ConfEntry): string | null {
  if (ce.kind === 'initialize') {
    if (config.voters.length > 0 || config.learners.length > 0) return 'the configuration is already initialized'
    if (ce.configuration.voters.length === 0) return 'the founding configuration has no voter'
    return checkConfiguration(ce.configuration)
  }
  const isVoter = config.voters.includes(ce.node)
  const isLearner = config.learners.includes(ce.node)
  switch (ce.kind) {
    case 'addVoter':
      if (isVoter) return `${ce.node} is already a voter`
      if (isLearner) return `${ce.node} is a learner; use promoteLearner`
      return null
    case 'addLearner':
      if (isVoter) return `${ce.node} is already a voter`
      if (isLearner) return `${ce.node} is already a learner`
      return null
    case 'promoteLearner':
      if (!isLearner) return `${ce.node} is not a learner`
      return null
    case 'demoteVoter':
      if (!isVoter) return `${ce.node} is not a voter`
      if (config.voters.length === 1) return `${ce.node} is the last voter`
      return null
    case 'removeNode':
      if (!isVoter && !isLearner) return `${ce.node} is not a member`
      if (isVoter && config.voters.length === 1) return `${ce.node} is the last voter`
      return null
    default:
      return `unknown kind ${String((ce as ConfChange).kind)}`
  }
}

export function validateConfChange(config: Configuration, cc: ConfChange): string | null {
  if ((cc.kind as string) === 'initialize' || KIND_CODES[cc.kind] === undefined)
    return `unknown kind ${String(cc.kind)}`
  if (
    config.voters.length + config.learners.length >= MAX_MEMBERS &&
    (cc.kind === 'addVoter' || cc.kind === 'addLearner')
  ) {
    return `the configuration already has ${MAX_MEMBERS} members`
  }
  return validateConfEntry(config, cc)
}

/** The configuration after `ce`; throws ConfChangeError if it does not apply. Member lists stay sorted. */
export function applyConfEntry(config: Configuration, ce: ConfEntry): Configuration {
  const problem = validateConfEntry(config, ce)
  if (problem !== null) {
    const what = ce.kind === 'initialize' ? 'initialize' : `${ce.kind}(${ce.node})`
    throw new ConfChangeError(`cannot apply ${what}: ${problem}`)
  }
  if (ce.kind === 'initialize') return normalizeConfiguration(ce.configuration)
  const voters = config.voters.filter((v) => v !== ce.node)
  const learners = config.learners.filter((l) => l !== ce.node)
  switch (ce.kind) {
    case 'addVoter':
    case 'promoteLearner':
      voters.push(ce.node)
      break
    case 'addLearner':
    case 'demoteVoter':
      learners.push(ce.node)
      break
    case 'removeNode':
      break
  }
  return normalizeConfiguration({ voters, learners })
}

export function normalizeConfiguration(c: Configuration): Configuration {
  return { voters: [...c.voters].sort(), learners: [...c.learners].sort() }
}

/** Returns a problem description or null. Voters and learners must be disjoint and free of duplicates. */
export function checkConfiguration(c: Configuration): string | null {
  if (!Array.isArray(c.voters) || !Array.isArray(c.learners)) return 'voters and learners must be arrays'
  if (c.voters.length + c.learners.length > MAX_MEMBERS) return `more than ${MAX_MEMBERS} members`
  const seen = new Set<string>()
  for (const id of [...c.voters, ...c.learners]) {
    if (typeof id !== 'string' || id.length === 0) return 'member ids must be non-empty strings'
    if (seen.has(id)) return `member ${id} is listed twice`
    seen.add(id)
  }
  return null
}

export const EMPTY_CONFIGURATION: Configuration = { voters: [], learners: [] }
