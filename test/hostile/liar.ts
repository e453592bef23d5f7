// A lying member, as its own process: it takes a real member's node.key, dials the other members over
// libp2p and sends them raw Raft frames through the real transport framing. Used by
// test/hostile/member.test.ts:
//   tsx test/hostile/liar.ts ATTACK NODE_KEY_FILE TERM PEER@HOST:PORT...
// ATTACK is one of max-term, max-index, impersonate, higher-term. Prints "sent N" and exits.
import '../../daemon/host/polyfill.js'
import { readFileSync } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import pino from 'pino'
import { MAX_TERM_OR_INDEX, type Message } from '../../board/raft/index.js'
import { RaftTransport } from '../../daemon/replica/transport/index.js'

const FRAMES = 1_000
const [attack, keyFile, termText, ...targets] = process.argv.slice(2)
const key = privateKeyFromProtobuf(new Uint8Array(readFileSync(keyFile)))
const self = peerIdFromPrivateKey(key).toString()
const term = Number(termText)
const peers = targets.map((t) => {
  const [id, hostPort] = t.split('@')
  const [host, port] = hostPort.split(':')
  return { id, addr: `/ip4/${host}/tcp/${port}` }
})

const libp2p = await createLibp2p({
  privateKey: key,
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()]
})
const transport = new RaftTransport({ libp2p, selfId: self, isMember: () => true, logger: pino({ level: 'silent' }) })
await transport.start()
for (const p of peers) {
  await libp2p.peerStore.merge(peerIdFromString(p.id), { multiaddrs: [multiaddr(p.addr)] })
  await libp2p.dial(peerIdFromString(p.id))
}

const hash = new Uint8Array(32)
function frame(to: string, i: number): Message {
  switch (attack) {
    case 'max-term':
      return { type: 'heartbeat', from: self, to, term: MAX_TERM_OR_INDEX, commit: 0, context: null }
    case 'max-index':
      return {
        type: 'app',
        from: self,
        to,
        term,
        prevIndex: MAX_TERM_OR_INDEX,
        prevTerm: term,
        prevHash: hash,
        entries: [],
        commit: MAX_TERM_OR_INDEX
      }
    case 'impersonate':
      return { type: 'heartbeat', from: self, to, term, commit: i, context: null }
    case 'higher-term':
      return { type: 'heartbeat', from: self, to, term: term + 1 + (i % 3), commit: 0, context: null }
    default:
      throw new Error(`unknown attack ${attack}`)
  }
}
let sent = 0
for (let i = 0; i < FRAMES; i++) {
  for (const p of peers) {
    transport.send(frame(p.id, i))
    sent++
  }
  if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5))
}
await new Promise((resolve) => setTimeout(resolve, 1_000))
console.log(`sent ${sent}`)
await transport.stop()
await libp2p.stop()
