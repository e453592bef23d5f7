/**
 * Genesis: the founding description of a pool. `poolId` = tagged hash of its canonical encoding.
 *
 * Encoding (version 1):
 *
 *     version u8 = 1
 *     members       varint n (2..1024), n × (key 32 | peerId: varint len (1..128) + UTF-8)
 *                   sorted by key, strictly increasing; keys are valid BIP340 x-only keys;
 *                   peer ids are alphanumeric and unique
 *     balances      n × u64 (aligned with members; each and the total ≤ 21e6 BTC)
 *     funding       txid 32 | vout u32
 *     kickoutDelayBlocks  u32 (1..52560)
 *     creationHeight      u32 (creationHeight + kickoutDelayBlocks < 500,000,000)
 */
import { compareBytes } from './bytes.js'
import { EncodeError, Writer, decodeAll, type Reader } from './codec.js'
import {
  checkObjectSize,
  readBalances,
  readHeight,
  readOutpoint,
  sumSats,
  writeBalances,
  writeOutpoint,
  type Outpoint
} from './common.js'
import { TAGS, taggedHash } from './hash.js'
import { isValidPublicKey } from './keys.js'
import {
  LOCKTIME_THRESHOLD,
  MAX_KICKOUT_DELAY_BLOCKS,
  MAX_MEMBERS,
  MAX_MONEY_SATS,
  MAX_PEER_ID_BYTES,
  MIN_GENESIS_MEMBERS,
  MIN_KICKOUT_DELAY_BLOCKS
} from './limits.js'

export const GENESIS_VERSION = 1

export interface GenesisMember {
  /** BIP340 x-only public key (32 bytes): signs pool objects. */
  key: Uint8Array
  /** libp2p peer id (text form): transport identity. */
  peerId: string
}

export interface Genesis {
  /** Sorted by key (strictly increasing). */
  members: GenesisMember[]
  /** Initial balance of each member, aligned with `members`. */
  balances: bigint[]
  /** The on-chain outpoint holding the pool's funds. */
  funding: Outpoint
  /** Kick-out delay X in blocks. */
  kickoutDelayBlocks: number
  /** Height T of state 0. */
  creationHeight: number
}

const PEER_ID_PATTERN = /^[A-Za-z0-9]+$/

/**
 * Why `genesis` is not valid, or null. With `checkKeys`, checks everything the decoder checks;
 * without, skips the curve check of each key (about 0.1 ms per key), as encoding does.
 */
function genesisProblem(g: Genesis, checkKeys: boolean): { field: string; reason: string } | null {
  const n = g.members.length
  if (n < MIN_GENESIS_MEMBERS)
    return { field: 'members', reason: `at least ${MIN_GENESIS_MEMBERS} members required, got ${n}` }
  if (n > MAX_MEMBERS) return { field: 'members', reason: `count ${n} exceeds limit ${MAX_MEMBERS}` }
  const peerIds = new Set<string>()
  for (let i = 0; i < n; i++) {
    const m = g.members[i]!
    if (!(m.key instanceof Uint8Array) || m.key.length !== 32)
      return { field: `members[${i}].key`, reason: 'expected 32 bytes' }
    if (checkKeys && !isValidPublicKey(m.key))
      return { field: `members[${i}].key`, reason: 'not a valid BIP340 x-only public key' }
    if (i > 0 && compareBytes(g.members[i - 1]!.key, m.key) >= 0) {
      return {
        field: `members[${i}].key`,
        reason: compareBytes(g.members[i - 1]!.key, m.key) === 0 ? 'duplicate key' : 'members not sorted by key'
      }
    }
    if (!PEER_ID_PATTERN.test(m.peerId))
      return { field: `members[${i}].peerId`, reason: 'peer id must be non-empty and alphanumeric' }
    if (m.peerId.length > MAX_PEER_ID_BYTES)
      return { field: `members[${i}].peerId`, reason: `length ${m.peerId.length} exceeds limit ${MAX_PEER_ID_BYTES}` }
    if (peerIds.has(m.peerId)) return { field: `members[${i}].peerId`, reason: 'duplicate peer id' }
    peerIds.add(m.peerId)
  }
  if (g.balances.length !== n)
    return { field: 'balances', reason: `expected ${n} balances (one per member), got ${g.balances.length}` }
  for (let i = 0; i < n; i++) {
    const b = g.balances[i]!
    if (typeof b !== 'bigint' || b < 0n || b > MAX_MONEY_SATS)
      return { field: `balances[${i}]`, reason: `amount ${String(b)} is not within 0..${MAX_MONEY_SATS} sats` }
  }
  const total = sumSats(g.balances)
  if (total > MAX_MONEY_SATS)
    return { field: 'balances', reason: `total ${total} exceeds 21 million BTC (${MAX_MONEY_SATS} sats)` }
  const x = g.kickoutDelayBlocks
  if (!Number.isInteger(x) || x < MIN_KICKOUT_DELAY_BLOCKS || x > MAX_KICKOUT_DELAY_BLOCKS) {
    return {
      field: 'kickoutDelayBlocks',
      reason: `${x} is not within ${MIN_KICKOUT_DELAY_BLOCKS}..${MAX_KICKOUT_DELAY_BLOCKS}`
    }
  }
  const h = g.creationHeight
  if (!Number.isInteger(h) || h < 0 || h + x >= LOCKTIME_THRESHOLD) {
    return {
      field: 'creationHeight',
      reason: `creationHeight + kickoutDelayBlocks must be a height below ${LOCKTIME_THRESHOLD}, got ${h} + ${x}`
    }
  }
  return null
}

/** Throws `EncodeError` naming the field if `g` is not a valid genesis (keys included). */
export function checkGenesis(g: Genesis): void {
  const p = genesisProblem(g, true)
  if (p) throw new EncodeError(`genesis.${p.field}`, p.reason)
}

/**
 * Build a genesis from members and balances in any order: sorts them into canonical order and
 * validates (throws `EncodeError` naming the field).
 */
export function makeGenesis(params: {
  members: { key: Uint8Array; peerId: string; balanceSats: bigint }[]
  funding: Outpoint
  kickoutDelayBlocks: number
  creationHeight: number
}): Genesis {
  const sorted = [...params.members].sort((a, b) => compareBytes(a.key, b.key))
  const g: Genesis = {
    members: sorted.map((m) => ({ key: new Uint8Array(m.key), peerId: m.peerId })),
    balances: sorted.map((m) => m.balanceSats),
    funding: { txid: new Uint8Array(params.funding.txid), vout: params.funding.vout },
    kickoutDelayBlocks: params.kickoutDelayBlocks,
    creationHeight: params.creationHeight
  }
  checkGenesis(g)
  return g
}

/**
 * Append the canonical encoding. Checks the structure but not that each key is a curve point
 * (`makeGenesis`, `checkGenesis` and the decoder do), so hashing a known genesis stays cheap.
 */
export function writeGenesis(w: Writer, g: Genesis): void {
  const p = genesisProblem(g, false)
  if (p) throw new EncodeError(`genesis.${p.field}`, p.reason)
  w.u8(GENESIS_VERSION)
  w.array(
    g.members,
    MAX_MEMBERS,
    (w, m, i) => {
      w.bytes32(m.key, `members[${i}].key`).string(m.peerId, MAX_PEER_ID_BYTES, `members[${i}].peerId`)
    },
    'members'
  )
  writeBalances(w, g.balances)
  w.field('funding', (w) => writeOutpoint(w, g.funding))
  w.u32(g.kickoutDelayBlocks, 'kickoutDelayBlocks')
  w.u32(g.creationHeight, 'creationHeight')
}

export function readGenesis(r: Reader): Genesis {
  r.version([GENESIS_VERSION])
  const peerIds = new Set<string>()
  let prev: Uint8Array | undefined
  const members = r.array(
    'members',
    MAX_MEMBERS,
    (r) => {
      const key = r.bytes32('key')
      if (prev !== undefined && compareBytes(prev, key) >= 0) {
        r.fail('key', compareBytes(prev, key) === 0 ? 'duplicate key' : 'members not sorted by key')
      }
      if (!isValidPublicKey(key)) r.fail('key', 'not a valid BIP340 x-only public key')
      prev = key
      const peerId = r.string('peerId', MAX_PEER_ID_BYTES)
      if (!PEER_ID_PATTERN.test(peerId)) r.fail('peerId', 'peer id must be non-empty and alphanumeric')
      if (peerIds.has(peerId)) r.fail('peerId', 'duplicate peer id')
      peerIds.add(peerId)
      return { key, peerId }
    },
    32 + 2
  )
  if (members.length < MIN_GENESIS_MEMBERS)
    r.fail('members', `at least ${MIN_GENESIS_MEMBERS} members required, got ${members.length}`)
  const balances = readBalances(r, 'balances', members.length)
  const funding = readOutpoint(r, 'funding')
  const kickoutDelayBlocks = r.u32('kickoutDelayBlocks')
  if (kickoutDelayBlocks < MIN_KICKOUT_DELAY_BLOCKS || kickoutDelayBlocks > MAX_KICKOUT_DELAY_BLOCKS) {
    r.fail(
      'kickoutDelayBlocks',
      `${kickoutDelayBlocks} is not within ${MIN_KICKOUT_DELAY_BLOCKS}..${MAX_KICKOUT_DELAY_BLOCKS}`
    )
  }
  const creationHeight = readHeight(r, 'creationHeight')
  if (creationHeight + kickoutDelayBlocks >= LOCKTIME_THRESHOLD) {
    r.fail('creationHeight', `creationHeight + kickoutDelayBlocks must be below ${LOCKTIME_THRESHOLD}`)
  }
  return { members, balances, funding, kickoutDelayBlocks, creationHeight }
}

/** Canonical encoding; throws `EncodeError` naming the field if `g` is invalid. */
export function encodeGenesis(g: Genesis): Uint8Array {
  const w = new Writer(64 + g.members.length * 100)
  writeGenesis(w, g)
  return w.finish()
}

/** Decode and validate; throws `DecodeError` naming the field. */
export function decodeGenesis(bytes: Uint8Array): Genesis {
  checkObjectSize(bytes, 'genesis')
  return decodeAll(bytes, 'genesis', readGenesis)
}

/** `poolId` of a genesis: tagged hash (`poolboard/genesis`) of its canonical encoding. */
export function poolIdOf(g: Genesis): Uint8Array {
  return taggedHash(TAGS.genesis, encodeGenesis(g))
}
