// Real libp2p nodes on loopback TCP for the transport tests, with a member-only connection gater
// like daemon/net/p2p.ts, and a RaftTransport on each.
import '../../daemon/host/polyfill.js'
import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import pino from 'pino'
import type { Message } from '../../board/raft/types.js'
import { RaftTransport, type TransportLimits, type TransportTiming } from '../../daemon/replica/transport/index.js'
import { waitFor } from '../../daemon/host/wait.js'

const UNTIL_POLL_MS = 10

export interface TestNode {
  readonly id: string
  readonly key: PrivateKey
  readonly port: number
  readonly libp2p: Libp2p
  readonly transport: RaftTransport
  /** Every message the transport delivered, in order. */
  readonly inbox: Message[]
  /** Log lines (JSON) the transport wrote at warn level or above. */
  readonly logLines: string[]
  stop: () => Promise<void>
}

export interface NodeOptions {
  key?: PrivateKey
  port?: number
  /** Peer ids the connection gater lets in (read at every connection: the set may change). */
  allowed: Set<string>
  /** Peer ids the transport treats as members (default: `allowed`). */
  members?: Set<string>
  limits?: Partial<TransportLimits>
  timing?: Partial<TransportTiming>
}

export async function newKey(): Promise<{ key: PrivateKey; id: string }> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

/** Starts a libp2p node listening on 127.0.0.1 (port 0 unless given) and its transport. */
export async function startNode(options: NodeOptions): Promise<TestNode> {
  const key = options.key ?? (await newKey()).key
  const id = peerIdFromPrivateKey(key).toString()
  const deny = (peer: { toString: () => string }): boolean => !options.allowed.has(peer.toString())
  const libp2p = await createLibp2p({
    privateKey: key,
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${options.port ?? 0}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      denyDialPeer: deny,
      denyInboundEncryptedConnection: deny,
      denyOutboundEncryptedConnection: deny
    }
  })
  const logLines: string[] = []
  const logger = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        logLines.push(line)
      }
    }
  )
  const members = options.members ?? options.allowed
  const inbox: Message[] = []
  let transport: RaftTransport
  let port: number
  try {
    transport = new RaftTransport({
      libp2p,
      selfId: id,
      isMember: (peer) => members.has(peer),
      logger,
      limits: options.limits,
      timing: options.timing
    })
    transport.onMessage((m) => {
      inbox.push(m)
    })
    await transport.start()
    port = Number(/\/tcp\/(\d+)/.exec(libp2p.getMultiaddrs()[0]!.toString())?.[1])
    assert.ok(port > 0, 'listening on a TCP port')
  } catch (err) {
    // Never leave a node running behind a failed setup: it would keep the test process alive.
    await libp2p.stop()
    throw err
  }
  let stopped = false
  return {
    id,
    key,
    port,
    libp2p,
    transport,
    inbox,
    logLines,
    stop: async () => {
      if (stopped) return
      stopped = true
      await transport.stop()
      await libp2p.stop()
    }
  }
}

/** Tells `from` where `to` listens. */
export async function introduce(from: TestNode, to: { id: string; port: number }): Promise<void> {
  await from.libp2p.peerStore.merge(peerIdFromString(to.id), {
    multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${to.port}`)]
  })
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  return await waitFor(what, check, timeoutMs, UNTIL_POLL_MS)
}
