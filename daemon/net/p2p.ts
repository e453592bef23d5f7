import '../host/polyfill.js'
import { isIP } from 'node:net'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@libp2p/yamux'
import { identify, type Identify } from '@libp2p/identify'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { tcpMultiaddr, type HostPort, type MemberEntry } from '../host/config.js'
import { LogLimiter, type Logger } from '../host/log.js'
import { toHex } from '../../protocol/bytes.js'
import { sha256 } from '../../protocol/hash.js'

// daemon/net/: how members reach each other: libp2p connections among the configured members only
// (this file), the pool's gossip topic (gossip.ts) and member requests (rpc.ts).

export type PoolLibp2p = Libp2p<{ identify: Identify; pubsub: GossipSub }>

export interface MemberNetworkOptions {
  privateKey: PrivateKey
  peerId: string
  listen: HostPort
  /** Every member of the pool; this node's own entry is skipped. */
  members: readonly MemberEntry[]
  /** Peer ids of the board's voters: always dialed (see `dialTargets`). */
  voterPeerIds?: readonly string[]
  logger: Logger
}

/** Up to this many members, every member dials every other (a full mesh of connections). */
export const FULL_MESH_MAX_MEMBERS = 64
/** In a larger pool, each member dials the voters and this many other members. */
export const DIALED_MEMBERS = 16

/**
 * The members this node keeps a connection to by dialing them itself; it accepts every member that
 * dials it. Up to `FULL_MESH_MAX_MEMBERS`: everyone. Beyond: the board's voters (the Raft leader
 * is one of them and must reach everyone; it dials learners on demand) and `DIALED_MEMBERS`
 * others picked by rendezvous hashing of the two peer ids, so the choice is stable across restarts
 * and spread evenly, each member ending up with about twice that many links. Gossipsub's mesh
 * (degree 6 to 12) then runs over those links: a message reaches every member of a 1,000-member
 * pool in a handful of hops (test/sim/pool-scale.ts measures at most 7 with degree 8).
 */
export function dialTargets(
  selfPeerId: string,
  members: readonly MemberEntry[],
  voterPeerIds: readonly string[]
): MemberEntry[] {
  const others = members.filter((m) => m.peerId !== selfPeerId)
  if (members.length <= FULL_MESH_MAX_MEMBERS) return others
  const voters = new Set(voterPeerIds)
  const score = (m: MemberEntry): string =>
    toHex(
      sha256(
        new TextEncoder().encode(selfPeerId < m.peerId ? `${selfPeerId} ${m.peerId}` : `${m.peerId} ${selfPeerId}`)
      )
    )
  const picked = others
    .filter((m) => !voters.has(m.peerId))
    .map((m) => ({ m, s: score(m) }))
    .sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0))
    .slice(0, DIALED_MEMBERS)
    .map((x) => x.m)
  return [...others.filter((m) => voters.has(m.peerId)), ...picked]
}

const REDIAL_MIN_MS = 500
const REDIAL_MAX_MS = 10_000
const DIAL_TIMEOUT_MS = 5_000
/** At most one "refused a stranger" log line per peer per this many ms, so a stranger cannot flood the log. */
const REFUSAL_LOG_INTERVAL_MS = 60_000
const MAX_REFUSAL_LOG_ENTRIES = 1_000
/** At most one "member connected/disconnected" line per member per this many ms. */
const LINK_LOG_INTERVAL_MS = 10_000
/**
 * A member's Noise and muxer upgrade takes milliseconds; a stranger holding a handshake open holds a
 * pending slot. libp2p's defaults (10 pending, 10 s) let ten unfinished handshakes lock members out.
 */
const INBOUND_UPGRADE_TIMEOUT_MS = 3_000
/** Pending inbound upgrades per member, and at least this many in all. */
const PENDING_UPGRADES_PER_MEMBER = 4
const MIN_PENDING_UPGRADES = 32
/** Largest gossip message accepted, in bytes. */
const MAX_GOSSIP_BYTES = 1024 * 1024

/**
 * Gossipsub's peer score, minus its IP colocation penalty (P6). P6 defends an open network against
 * one host running many identities; here the connection gater admits only the pool's members, so
 * it defends nothing, and it punishes members that share an address: a local cluster (every member
 * on 127.0.0.1), members behind one NAT or in one data centre. With more than 10 members on one IP
 * their scores fell quadratically below the publish and graylist thresholds (-125 at 16 members on
 * loopback), so nobody forwarded or accepted anyone's messages, silently: a 16-member pool could
 * not be created. The other score terms stay as gossipsub sets them.
 */
export const GOSSIP_SCORE_PARAMS = { IPColocationFactorWeight: 0 } as const

interface DialState {
  member: MemberEntry
  /** Dials since this member was last seen connected: a connection that the far side drops at once counts too. */
  failures: number
  nextDialAtMs: number
  dialing: boolean
  connected: boolean
}

/**
 * libp2p among the pool's members only. The connection gater allows exactly the member list:
 * strangers are refused (and logged), and we never dial them. A redial loop keeps a connection
 * to every member that is reachable, with capped exponential backoff.
 */
export class MemberNetwork {
  readonly libp2p: PoolLibp2p
  readonly peerId: string
  private readonly members: Map<string, MemberEntry>
  private readonly logger: Logger
  private readonly dialStates: DialState[]
  private readonly refusalLog: LogLimiter
  private readonly linkLog: LogLimiter
  private redialTimer: NodeJS.Timeout | undefined
  private isolated = false
  private stopped = false

  private constructor(libp2p: PoolLibp2p, members: Map<string, MemberEntry>, options: MemberNetworkOptions) {
    this.libp2p = libp2p
    this.peerId = options.peerId
    this.logger = options.logger
    this.refusalLog = new LogLimiter(options.logger, REFUSAL_LOG_INTERVAL_MS, MAX_REFUSAL_LOG_ENTRIES)
    this.linkLog = new LogLimiter(options.logger, LINK_LOG_INTERVAL_MS, MAX_REFUSAL_LOG_ENTRIES)
    this.members = members
    this.dialStates = dialTargets(options.peerId, options.members, options.voterPeerIds ?? []).map((member) => ({
      member,
      failures: 0,
      nextDialAtMs: 0,
      dialing: false,
      connected: false
    }))
  }

  static async create(options: MemberNetworkOptions): Promise<MemberNetwork> {
    const members = new Map(options.members.map((m) => [m.peerId, m]))
    const pendingLimit = Math.max(MIN_PENDING_UPGRADES, options.members.length * PENDING_UPGRADES_PER_MEMBER)
    // The gater is consulted before `network` exists, so it reads through this holder.
    const holder: { network?: MemberNetwork } = {}
    const deny = (peer: PeerId, direction: 'inbound' | 'outbound', address?: string): boolean => {
      const id = peer.toString()
      if (!members.has(id)) {
        holder.network?.logRefusal(id, direction, address)
        return true
      }
      return holder.network?.isolated === true
    }
    const libp2p = await createLibp2p({
      privateKey: options.privateKey,
      addresses: { listen: [tcpMultiaddr(options.listen)] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: {
        maxConnections: Math.max(16, options.members.length * 3),
        dialTimeout: DIAL_TIMEOUT_MS,
        inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT_MS,
        maxIncomingPendingConnections: pendingLimit,
        // Members' hosts are admitted ahead of strangers: past the pending limit and the per-host
        // connection rate (the peer id is only known after the handshake, so this goes by address).
        allow: memberHosts(options)
      },
      // libp2p's connection monitor pings every connection every 10 s on a new stream (stream
      // open, protocol negotiation, echo, close): with many members it was most of an idle node's
      // traffic. Liveness comes from the board's heartbeats and yamux's keep-alive instead.
      connectionMonitor: { enabled: false },
      connectionGater: {
        denyDialPeer: (peer) => deny(peer, 'outbound'),
        denyInboundConnection: (conn) => {
          holder.network?.upgradeStarted(conn.remoteAddr.toString())
          return false
        },
        denyInboundEncryptedConnection: (peer, conn) => {
          holder.network?.upgradeDone(conn.remoteAddr.toString())
          return deny(peer, 'inbound', conn.remoteAddr.toString())
        },
        denyOutboundEncryptedConnection: (peer, conn) => deny(peer, 'outbound', conn.remoteAddr.toString())
      },
      services: {
        identify: identify(),
        pubsub: gossipsub({
          allowPublishToZeroTopicPeers: true,
          emitSelf: false,
          maxInboundDataLength: MAX_GOSSIP_BYTES,
          scoreParams: GOSSIP_SCORE_PARAMS
        })
      },
      start: false
    })
    const network = new MemberNetwork(libp2p, members, options)
    holder.network = network
    libp2p.addEventListener('peer:connect', (event) => {
      network.onConnectionChange(event.detail.toString(), true)
    })
    libp2p.addEventListener('peer:disconnect', (event) => {
      network.onConnectionChange(event.detail.toString(), false)
    })
    return network
  }

  async start(): Promise<void> {
    for (const state of this.dialStates) {
      await this.libp2p.peerStore.merge(peerIdFromString(state.member.peerId), {
        multiaddrs: [multiaddr(tcpMultiaddr(state.member.address))]
      })
    }
    await this.libp2p.start()
    this.logger.info({ peerId: this.peerId, addresses: this.listenAddresses() }, 'libp2p listening')
    this.scheduleRedial(0)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.redialTimer !== undefined) clearTimeout(this.redialTimer)
    await this.libp2p.stop()
  }

  isMember(peerId: string): boolean {
    return this.members.has(peerId)
  }

  listenAddresses(): string[] {
    return this.libp2p.getMultiaddrs().map((a) => a.toString())
  }

  /** Members (not this node) with at least one open connection. */
  connectedMembers(): MemberEntry[] {
    const connected = new Set(
      this.libp2p
        .getConnections()
        .filter((c) => c.status === 'open')
        .map((c) => c.remotePeer.toString())
    )
    return [...this.members.values()].filter((m) => m.peerId !== this.peerId && connected.has(m.peerId))
  }

  /**
   * Cuts this node off (lab and fault tests): closes every connection and refuses new ones until
   * `heal()`, without stopping the process.
   */
  async cut(): Promise<void> {
    this.isolated = true
    await Promise.all(
      this.libp2p.getConnections().map(async (c) => {
        await c.close().catch(() => c.abort(new Error('cut off')))
      })
    )
    this.logger.warn('cut off from every other member')
  }

  heal(): void {
    this.isolated = false
    for (const state of this.dialStates) {
      state.failures = 0
      state.nextDialAtMs = 0
    }
    this.logger.warn('healed: reconnecting to the other members')
    this.scheduleRedial(0)
  }

  isCut(): boolean {
    return this.isolated
  }

  private onConnectionChange(peerId: string, connected: boolean): void {
    const state = this.dialStates.find((s) => s.member.peerId === peerId)
    if (state === undefined || this.stopped || state.connected === connected) return
    state.connected = connected
    // A link that flaps (a member that cut itself off, a dropping network) logs one line per member
    // per interval, which counts the changes held back.
    this.linkLog.log(
      'info',
      state.member.peerId,
      { peer: state.member.name, connected },
      connected ? 'member connected' : 'member disconnected'
    )
    if (!connected) this.scheduleRedial(REDIAL_MIN_MS)
  }

  private scheduleRedial(delayMs: number): void {
    if (this.stopped) return
    if (this.redialTimer !== undefined) clearTimeout(this.redialTimer)
    this.redialTimer = setTimeout(() => {
      this.redial()
    }, delayMs)
    this.redialTimer.unref()
  }

  private redial(): void {
    if (this.stopped) return
    const nowMs = Date.now()
    const connected = new Set(this.connectedMembers().map((m) => m.peerId))
    let nextMs = REDIAL_MAX_MS
    for (const state of this.dialStates) {
      if (connected.has(state.member.peerId)) {
        state.failures = 0
        continue
      }
      if (!this.isolated && !state.dialing && state.nextDialAtMs <= nowMs) this.dial(state)
      nextMs = Math.min(nextMs, Math.max(REDIAL_MIN_MS, state.nextDialAtMs - nowMs))
    }
    this.scheduleRedial(nextMs)
  }

  private dial(state: DialState): void {
    state.dialing = true
    // Back off before the outcome is known: a dial that "succeeds" but is dropped at once by the far
    // side (it cut itself off) must not be retried in a tight loop. The redial loop resets `failures`
    // once the member is seen connected.
    state.failures++
    const backoffMs = Math.min(REDIAL_MAX_MS, REDIAL_MIN_MS * 2 ** Math.min(state.failures - 1, 10))
    // Jitter spreads the redials of a cluster restarted all at once.
    state.nextDialAtMs = Date.now() + backoffMs * (0.75 + Math.random() * 0.5)
    this.logger.debug(
      { peer: state.member.name, failures: state.failures, nextInMs: Math.round(backoffMs) },
      'dialing a member'
    )
    this.libp2p
      .dial(peerIdFromString(state.member.peerId), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      .catch((err: Error) => {
        this.logger.debug({ peer: state.member.name, failures: state.failures, err: err.message }, 'dial failed')
      })
      .finally(() => {
        state.dialing = false
      })
  }

  /** Inbound upgrades started and not yet through the handshake, by remote address, with their start. */
  private readonly upgrading = new Map<string, number>()

  /** An inbound connection starts its handshake; a host holding many unfinished ones is reported. */
  upgradeStarted(address: string): void {
    const nowMs = performance.now()
    if (this.upgrading.size >= MAX_REFUSAL_LOG_ENTRIES) this.upgrading.clear()
    this.upgrading.set(address, nowMs)
    const host = hostOf(address)
    let unfinished = 0
    for (const [a, atMs] of this.upgrading) {
      if (nowMs - atMs > INBOUND_UPGRADE_TIMEOUT_MS) this.upgrading.delete(a)
      else if (hostOf(a) === host) unfinished++
    }
    if (unfinished > PENDING_UPGRADES_PER_MEMBER) {
      this.refusalLog.log(
        'warn',
        `pending ${host}`,
        { host, unfinished, timeoutMs: INBOUND_UPGRADE_TIMEOUT_MS },
        'a host holds many unfinished handshakes (members are still admitted; strangers time out)'
      )
    }
  }

  upgradeDone(address: string): void {
    this.upgrading.delete(address)
  }

  private logRefusal(peerId: string, direction: 'inbound' | 'outbound', address: string | undefined): void {
    this.refusalLog.log(
      'warn',
      peerId,
      { peer: peerId, direction, address },
      'refused a connection: peer is not a pool member'
    )
  }
}

function hostOf(address: string): string {
  return address.split('/')[2] ?? address
}

/** The multiaddr of every other member's host (for the connection manager's allow list). */
function memberHosts(options: MemberNetworkOptions): string[] {
  const hosts = new Set<string>()
  for (const m of options.members) {
    if (m.peerId === options.peerId) continue
    const host = m.address.host
    if (isIP(host) !== 0) hosts.add(`/ip${isIP(host)}/${host}`)
  }
  return [...hosts]
}
