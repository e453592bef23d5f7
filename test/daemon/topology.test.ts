import assert from 'node:assert/strict'
import { DIALED_MEMBERS, FULL_MESH_MAX_MEMBERS, GOSSIP_SCORE_PARAMS, dialTargets } from '../../daemon/net/p2p.js'
import type { MemberEntry } from '../../daemon/host/config.js'

/**
 * Rule (docs/protocol.md §10): up to 64 members every member dials every other; beyond, each dials
 * the voters and 16 others chosen by rendezvous hashing (stable, spread evenly), and the links
 * that result connect every member; gossip's peer score has no IP colocation penalty.
 */
function membersOf(n: number): MemberEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `m${i}`,
    peerId: `12D3KooWpeer${String(i).padStart(4, '0')}`,
    address: { host: '127.0.0.1', port: 10_000 + i }
  }))
}

describe('member topology', () => {
  it(`up to ${FULL_MESH_MAX_MEMBERS} members, everyone dials everyone`, () => {
    const ms = membersOf(FULL_MESH_MAX_MEMBERS)
    assert.equal(dialTargets(ms[3].peerId, ms, [ms[0].peerId]).length, FULL_MESH_MAX_MEMBERS - 1)
  })

  it('in a 300-member pool each dials the voters and 16 others; the links connect everyone, and the choice is stable', () => {
    const ms = membersOf(300)
    const voters = ms.slice(0, 5).map((m) => m.peerId)
    const links = new Map<string, Set<string>>(ms.map((m) => [m.peerId, new Set()]))
    for (const m of ms) {
      const targets = dialTargets(m.peerId, ms, voters)
      const isVoter = voters.includes(m.peerId)
      assert.equal(targets.length, DIALED_MEMBERS + (isVoter ? 4 : 5), m.name)
      for (const v of voters)
        if (v !== m.peerId)
          assert.ok(
            targets.some((t) => t.peerId === v),
            `${m.name} dials voter ${v}`
          )
      assert.deepEqual(
        dialTargets(m.peerId, [...ms].reverse(), voters)
          .map((t) => t.peerId)
          .sort(),
        targets.map((t) => t.peerId).sort()
      )
      for (const t of targets) {
        links.get(m.peerId)!.add(t.peerId)
        links.get(t.peerId)!.add(m.peerId)
      }
    }
    // Without the voters (they link to everyone), the others still form one connected graph.
    const seen = new Set([ms[10].peerId])
    const queue = [ms[10].peerId]
    while (queue.length > 0) {
      for (const p of links.get(queue.shift()!)!)
        if (!voters.includes(p) && !seen.has(p)) {
          seen.add(p)
          queue.push(p)
        }
    }
    assert.equal(seen.size, 295)
  })

  it('gossip scores no IP colocation: members on one address are not penalised', () => {
    assert.equal(GOSSIP_SCORE_PARAMS.IPColocationFactorWeight, 0)
  })
})
