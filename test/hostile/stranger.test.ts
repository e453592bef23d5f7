import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { TestCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/process.js'

/**
 * A stranger on loopback that keeps `count` TCP connections to `port` open without ever finishing a
 * handshake (each sends the first bytes of multistream-select, then nothing), reopening any the node
 * closes.
 */
function holdHandshakes(port: number, count: number): { opened: () => number; stop: () => void } {
  const sockets = new Set<Socket>()
  let stopped = false
  let opened = 0
  const open = (): void => {
    if (stopped) return
    const s = connect(port, '127.0.0.1')
    opened++
    sockets.add(s)
    s.on('connect', () => {
      s.write(Buffer.from('\x13/multistream/1.0.0\n'))
    })
    s.on('error', () => undefined)
    s.on('close', () => {
      sockets.delete(s)
      setTimeout(open, 20)
    })
  }
  for (let i = 0; i < count; i++) open()
  return {
    opened: () => opened,
    stop: () => {
      stopped = true
      for (const s of sockets) s.destroy()
    }
  }
}

// Rule (issue 11, "members can always get in"): however many handshakes a stranger holds open,
// a member that reconnects is admitted, and the node says at warn level who holds them.
describe('hostile: a stranger holding handshakes open cannot lock members out', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  let stranger: ReturnType<typeof holdHandshakes> | undefined

  before(async () => {
    cluster = await TestCluster.up(3)
  })
  after(async () => {
    stranger?.stop()
    await cluster?.destroy()
  })

  it('40 unfinished handshakes on every node; a restarted member reconnects to all', async () => {
    const nodes = await cluster.status()
    const ports = nodes.map((n) => Number(n.listen.split(':')[1]))
    const holders = ports.map((p) => holdHandshakes(p, 40))
    stranger = {
      opened: () => holders.reduce((a, h) => a + h.opened(), 0),
      stop: () => {
        for (const h of holders) h.stop()
      }
    }
    await cluster.run('kill', '2')
    await cluster.run('start', '2')
    const connected = await waitFor(
      'node2 to be connected to both others while the stranger holds handshakes',
      async () => {
        const n = await cluster.node(2)
        return n.connectedPeers === 2 ? n : undefined
      },
      60_000
    )
    assert.equal(connected.connectedPeers, 2)
    assert.ok(stranger.opened() >= 120, `the stranger opened ${stranger.opened()} connections`)
    const warned = [1, 3].some((i) => cluster.log(i).includes('a host holds many unfinished handshakes'))
    assert.ok(warned, 'a node logged the unfinished handshakes at warn')
    process.stderr.write(`      stranger opened ${stranger.opened()} connections; node2 reconnected to both\n`)
  })
})
