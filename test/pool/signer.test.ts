/**
 * The member's signing policy (daemon/pool/signer.ts), built in one process on a real pool board,
 * real signatures and a real LevelDB for its promises: every refusal rule, each named by its code.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import {
  findEquivocations,
  makeGenesis,
  makePartitionRequest,
  makeUpdateRequest,
  signPartitionRequest,
  signUpdateRequest,
  statementId,
  RuleError,
  type Genesis,
  type PartitionRequest,
  type PartitionStatement,
  type PoolRef,
  type PoolState,
  type UpdateRequest
} from '../../protocol/index.js'
import { DefenseRefusal } from '../../daemon/defense/refusal.js'
import type { MemberEntry } from '../../daemon/host/config.js'
import type { GenesisProposal } from '../../daemon/net/gossip.js'
import { MemberSigner, WontSign, Forged, type SignerDefenses } from '../../daemon/pool/signer.js'
import { PoolWords } from '../../daemon/pool/words.js'
import { tempDatabaseEachTest } from '../helpers/database.js'
import {
  Harness,
  MEMBERS,
  blocksEntry,
  evidenceEntry,
  genesisEntry,
  kickoutEntry,
  partition,
  smallGenesis,
  statementEntry
} from './helpers.js'

const ROOT: PoolRef = { kind: 'root' }
const CONFIG: MemberEntry[] = MEMBERS.slice(0, 5).map((m, i) => ({
  name: `node${i + 1}`,
  peerId: m.peerId,
  address: { host: '127.0.0.1', port: 7000 + i }
}))
const nameOf = (key: Uint8Array): string =>
  CONFIG[MEMBERS.findIndex((m) => Buffer.from(m.publicKey).equals(key))]?.name ?? 'stranger'
/** This node is node2 (MEMBERS[1], balance 200,000 sats in smallGenesis). */
const ME = 1
const SOON = (): number => Date.now() + 60_000

describe('the member signer: every refusal rule (daemon/pool/signer.ts)', () => {
  const disk = tempDatabaseEachTest()
  let h: Harness
  let reads: number
  /** The keys members answered hello with, by peer id. */
  let hello: Map<string, Uint8Array>

  beforeEach(() => {
    h = new Harness()
    reads = 0
    hello = new Map(CONFIG.map((c, i) => [c.peerId, MEMBERS[i].publicKey]))
  })

  function signer(opts: { defenses?: SignerDefenses; refuseEquivocators?: boolean } = {}): MemberSigner {
    return new MemberSigner({
      selfPeerId: MEMBERS[ME].peerId,
      memberKey: MEMBERS[ME].publicKey,
      memberSecret: MEMBERS[ME].secretKey,
      configMembers: CONFIG,
      members: {
        byPeer: (peerId) => {
          const i = CONFIG.findIndex((c) => c.peerId === peerId)
          return i < 0 ? undefined : { name: CONFIG[i].name, peerId, key: hello.get(peerId) ?? null }
        }
      },
      poolBoard: h.board,
      db: disk.db,
      // The board is local and applied: a read has nothing to wait for; counted to see when the signer reads.
      read: async () => {
        reads++
      },
      words: new PoolWords(h.board, nameOf),
      defenses: opts.defenses,
      refuseEquivocators: opts.refuseEquivocators ?? true,
      maxRoundMs: 120_000
    })
  }

  async function refused(decision: Promise<unknown>, code: string, pattern?: RegExp): Promise<WontSign> {
    const err = await decision.then(
      () => assert.fail(`expected a refusal (${code})`),
      (e: unknown) => e
    )
    assert(err instanceof WontSign, `expected WontSign(${code}), got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (pattern !== undefined) assert.match(err.message, pattern)
    return err
  }

  async function ruleRefused(decision: Promise<unknown>, code: string): Promise<void> {
    const err = await decision.then(
      () => assert.fail(`expected a rule error (${code})`),
      (e: unknown) => e
    )
    assert(err instanceof RuleError, `expected RuleError(${code}), got ${String(err)}`)
    assert.equal(err.code, code, err.message)
  }

  const open = (): PoolState => {
    h.accept(genesisEntry(smallGenesis()))
    return h.state()
  }

  function update(
    current: PoolState,
    opts: {
      proposer?: number
      payer?: number
      payee?: number
      amountSats?: bigint
      heightT?: number
      deadlineMs?: number
    } = {}
  ): UpdateRequest {
    const proposer = opts.proposer ?? 0
    const payment = {
      payer: MEMBERS[opts.payer ?? proposer].publicKey,
      payee: MEMBERS[opts.payee ?? ME].publicKey,
      amountSats: opts.amountSats ?? 1_000n
    }
    const q = makeUpdateRequest(current, {
      proposer: MEMBERS[proposer].publicKey,
      payment,
      heightT: opts.heightT ?? current.heightT,
      deadlineMs: opts.deadlineMs ?? SOON(),
      roundId: randomBytes(32)
    })
    return signUpdateRequest(q, MEMBERS[proposer].secretKey)
  }

  function partitionRequest(
    parent: PoolState,
    actives: number[],
    newBalances: bigint[],
    opts: { proposer?: number; heightT?: number; deadlineMs?: number } = {}
  ): PartitionRequest {
    const proposer = opts.proposer ?? actives.find((i) => i !== ME) ?? ME
    const q = makePartitionRequest(parent, {
      proposer: MEMBERS[proposer].publicKey,
      actives: actives.map((i) => MEMBERS[i].publicKey),
      newBalances,
      heightT: opts.heightT ?? parent.heightT,
      deadlineMs: opts.deadlineMs ?? SOON(),
      roundId: randomBytes(32)
    })
    return signPartitionRequest(q, MEMBERS[proposer].secretKey)
  }

  /** Evidence on the board that `member` signed two conflicting statements of `parent`. */
  function convict(parent: PoolState, member: number): void {
    const key = parent.pool.members[member]
    const total = parent.balances[member] + parent.balances[3]
    const [ev] = findEquivocations(
      partition(parent, [member, 3], [1n, total - 1n], [key]),
      partition(parent, [member], [parent.balances[member]], [key])
    )
    h.accept(evidenceEntry(ev))
    assert.deepStrictEqual(h.board.equivocators(), [key])
  }

  describe('genesis (state 0)', () => {
    const proposal = (g: Genesis, deadlineMs = SOON()): GenesisProposal => ({
      roundId: randomBytes(32),
      deadlineMs,
      genesis: g
    })
    const genesisOf = (members: Array<{ key: Uint8Array; peerId: string }>): Genesis =>
      makeGenesis({
        members: members.map((m) => ({ ...m, balanceSats: 100_000n })),
        funding: { txid: new Uint8Array(32).fill(7), vout: 0 },
        kickoutDelayBlocks: 10,
        creationHeight: 100
      })
    const listed = (i: number): { key: Uint8Array; peerId: string } => ({
      key: MEMBERS[i].publicKey,
      peerId: MEMBERS[i].peerId
    })

    it('signs state 0 of a genesis that lists exactly the configured members with their hello keys', () => {
      const g = genesisOf([0, 1, 2, 3, 4].map(listed))
      const share = signer().decideGenesis(proposal(g))
      assert.equal(share.kind, 'state')
      assert.deepStrictEqual(share.member, MEMBERS[ME].publicKey)
      assert(h.board.signatureCache.verify(share.signature, share.subject, share.member), 'the share verifies')
    })

    it('refuses a genesis that leaves it out, binds its key elsewhere, adds a stranger, leaves a member out, contradicts hello, or is late; and a second pool', async () => {
      const s = signer()
      await refused(
        Promise.resolve().then(() => s.decideGenesis(proposal(genesisOf([0, 2, 3, 4].map(listed))))),
        'not-listed',
        /does not list my member key/
      )
      const swapped = [0, 1, 2, 3, 4].map(listed)
      swapped[1] = { key: MEMBERS[1].publicKey, peerId: MEMBERS[2].peerId }
      swapped[2] = { key: MEMBERS[2].publicKey, peerId: MEMBERS[1].peerId }
      await refused(
        Promise.resolve().then(() => s.decideGenesis(proposal(genesisOf(swapped)))),
        'not-listed',
        /binds my member key to peer/
      )
      await refused(
        Promise.resolve().then(() => s.decideGenesis(proposal(genesisOf([0, 1, 2, 3, 7].map(listed))))),
        'rule',
        /lists peers that are not members/
      )
      await refused(
        Promise.resolve().then(() => s.decideGenesis(proposal(genesisOf([0, 1, 2, 3].map(listed))))),
        'rule',
        /leaves out members node5/
      )
      hello.set(MEMBERS[2].peerId, MEMBERS[8].publicKey)
      await refused(
        Promise.resolve().then(() => s.decideGenesis(proposal(genesisOf([0, 1, 2, 3, 4].map(listed))))),
        'rule',
        /gives node3 key .* but it answered hello with/
      )
      hello.set(MEMBERS[2].peerId, MEMBERS[2].publicKey)
      await refused(
        Promise.resolve().then(() => s.decideGenesis(proposal(genesisOf([0, 1, 2, 3, 4].map(listed)), Date.now() - 1))),
        'late'
      )
      open()
      await refused(
        Promise.resolve().then(() => s.decideGenesis(proposal(genesisOf([0, 1, 2, 3, 4].map(listed))))),
        'exists',
        /already holds pool/
      )
    })
  })

  describe('updates (state N+1)', () => {
    it('signs one state N+1 per state N: the same request again is signed again, another N+1 is refused, also after a restart', async () => {
      const s0 = open()
      const first = update(s0)
      const share = await signer().decideUpdate(first)
      assert(share !== null)
      assert.equal(share.kind, 'state')
      assert(h.board.signatureCache.verify(share.signature, share.subject, share.member))
      assert.notEqual(await signer().decideUpdate(first), null, 'a retried round signs the same state')
      await refused(
        signer().decideUpdate(update(s0, { amountSats: 2_000n })),
        'already-signed',
        /I already signed another state 1 of the root pool \(node1 pays node2 1000 sats\)/
      )
      await disk.reopen()
      await refused(signer().decideUpdate(update(s0, { proposer: 3, payee: 4 })), 'already-signed')
    })

    it("refuses a pool it does not know, a pool that is not open, a height above the chain, a proven equivocator; drops another pool's request", async () => {
      const s0 = open()
      const s = signer()
      const req = update(s0)
      await refused(
        s.decideUpdate({
          ...req,
          from: { pool: { kind: 'partition', statementId: new Uint8Array(32).fill(9) }, stateNumber: 0 }
        }),
        'unknown-pool'
      )
      const readsBefore = reads
      await refused(
        s.decideUpdate(update(s0, { heightT: h.board.chainHeight + 1 })),
        'height',
        /above the chain height 100/
      )
      assert.equal(reads, readsBefore + 1, 'a request above the chain height is judged after a read')
      const other = await s.decideUpdate({ ...req, poolId: new Uint8Array(32).fill(1) }).then(
        () => null,
        (e: unknown) => e
      )
      assert(other instanceof Forged, "another pool's request is not refused but dropped")

      convict(s0, 0)
      await refused(s.decideUpdate(update(s0)), 'equivocator', /node1 is proven to have signed conflicting statements/)
      assert.notEqual(
        await signer({ refuseEquivocators: false }).decideUpdate(update(s0)),
        null,
        'without the evidence defense it signs'
      )

      h.accept(statementEntry(partition(s0, [2, 3], [300_000n, 400_000n])))
      await refused(
        signer().decideUpdate(update(s0, { proposer: 4 })),
        'frozen',
        /the root pool is frozen: it takes no new state/
      )
    })

    it('refuses what the rules refuse: a forged signature, a passed deadline', async () => {
      const s0 = open()
      const req = update(s0)
      await ruleRefused(signer().decideUpdate({ ...req, signature: new Uint8Array(64).fill(3) }), 'bad-signature')
      await ruleRefused(signer().decideUpdate(update(s0, { deadlineMs: Date.now() - 1 })), 'deadline-passed')
    })
  })

  describe('partitions (statements)', () => {
    it('signs as an active; is not asked as a passive', async () => {
      const s0 = open()
      const req = partitionRequest(s0, [ME, 2], [200_000n, 300_000n])
      const share = await signer().decidePartition(req, { alreadyRead: false })
      assert(share !== null)
      assert.equal(share.kind, 'statement')
      assert(
        h.board.signatureCache.verify(share.signature, share.subject, share.member),
        'the share verifies over the statement id'
      )
      assert.equal(reads, 1, 'a member reads the board before it signs a partition')
      assert.equal(
        await signer().decidePartition(partitionRequest(s0, [2, 3], [300_000n, 400_000n]), { alreadyRead: false }),
        null
      )
    })

    it('never signs a partition that conflicts with a statement the board holds, and names that statement', async () => {
      const s0 = open()
      const onBoard = partition(s0, [ME, 3], [200_000n, 400_000n])
      const index = h.accept(statementEntry(onBoard)).result.index
      const err = await refused(
        signer().decidePartition(partitionRequest(s0, [ME, 2], [200_000n, 300_000n]), { alreadyRead: false }),
        'conflict',
        /already spends the Withdraw output of node2 at the root pool state 0/
      )
      assert.deepStrictEqual(err.conflict, { statementId: statementId(onBoard), index })
      // A conflict over another member's output is refused too (this member's own output is free).
      await refused(
        signer().decidePartition(partitionRequest(s0, [ME, 3, 4], [200_000n, 400_000n, 500_000n], { proposer: 4 }), {
          alreadyRead: false
        }),
        'conflict',
        /node2, node4/
      )
    })

    it('never signs two statements spending its own Withdraw output, also after a restart', async () => {
      const s0 = open()
      const first = partitionRequest(s0, [ME, 2], [200_000n, 300_000n])
      assert.notEqual(await signer().decidePartition(first, { alreadyRead: false }), null)
      assert.notEqual(
        await signer().decidePartition(first, { alreadyRead: false }),
        null,
        'the same statement is signed again'
      )
      await refused(
        signer().decidePartition(partitionRequest(s0, [ME, 3], [200_000n, 400_000n]), { alreadyRead: false }),
        'already-signed',
        /I never sign a second one/
      )
      await disk.reopen()
      const err = await refused(
        signer().decidePartition(partitionRequest(s0, [ME, 4], [200_000n, 500_000n]), { alreadyRead: false }),
        'already-signed',
        /not on the board/
      )
      assert.equal(err.conflict, null, 'a statement that never reached the board is no board conflict')
    })

    it('refuses a lower balance it does not pay for, a height above the chain, an unknown or closed pool, a proven equivocator', async () => {
      const s0 = open()
      const s = signer()
      await refused(
        s.decidePartition(partitionRequest(s0, [ME, 2], [199_000n, 301_000n]), { alreadyRead: false }),
        'balance-decreased',
        /from 200000 to 199000 sats/
      )
      assert.notEqual(
        await signer().decidePartition(partitionRequest(s0, [ME, 3], [199_000n, 401_000n], { proposer: ME }), {
          alreadyRead: true
        }),
        null,
        'it may pay in its own partition'
      )
      await refused(
        s.decidePartition(partitionRequest(s0, [0, ME], [100_000n, 200_000n], { heightT: 101 }), {
          alreadyRead: false
        }),
        'height'
      )
      const req = partitionRequest(s0, [0, ME], [100_000n, 200_000n])
      await refused(
        s.decidePartition(
          { ...req, parent: { pool: { kind: 'partition', statementId: new Uint8Array(32).fill(5) }, stateNumber: 0 } },
          { alreadyRead: false }
        ),
        'unknown-pool'
      )
      convict(s0, 0)
      await refused(
        s.decidePartition(partitionRequest(s0, [0, ME], [100_000n, 200_000n]), { alreadyRead: false }),
        'equivocator'
      )
    })

    it('refuses a partition of a closed pool (a member was kicked out)', async () => {
      const s0 = open()
      h.accept(blocksEntry(11))
      h.accept(kickoutEntry(ROOT, 0, s0.pool.members[4]))
      await refused(
        signer().decidePartition(partitionRequest(s0, [0, ME], [100_000n, 200_000n]), { alreadyRead: false }),
        'closed',
        /is closed/
      )
    })

    it('refuses what the rules refuse: a forged signature, a stale state, a passed deadline', async () => {
      const s0 = open()
      const req = partitionRequest(s0, [0, ME], [100_000n, 200_000n])
      await ruleRefused(
        signer().decidePartition({ ...req, signature: new Uint8Array(64).fill(3) }, { alreadyRead: false }),
        'bad-signature'
      )
      await ruleRefused(
        signer().decidePartition(partitionRequest(s0, [0, ME], [100_000n, 200_000n], { deadlineMs: Date.now() - 1 }), {
          alreadyRead: false
        }),
        'deadline-passed'
      )
      await ruleRefused(
        signer().decidePartition({ ...req, parent: { pool: ROOT, stateNumber: 1 } }, { alreadyRead: false }),
        'stale-state'
      )
    })

    it('asks the defenses once: a reported conflict before the read, the others after; their refusal is its refusal', async () => {
      const s0 = open()
      const asked: string[] = []
      let reported: DefenseRefusal | null = new DefenseRefusal(
        'conflict-reported',
        'node4 proved my board lacks statement 0011223344556677',
        { statementId: new Uint8Array(32).fill(1), index: 7 }
      )
      let network: DefenseRefusal | null = null
      // The defenses' answers as given; the defenses themselves run in test/integration/lab.test.ts.
      const defenses: SignerDefenses = {
        reportedConflict: (st: PartitionStatement) => {
          asked.push(`reported:${reads}:${statementId(st).length}`)
          return reported
        },
        beforeSign: async () => {
          asked.push(`network:${reads}`)
          if (network !== null) throw network
        }
      }
      const s = signer({ defenses })
      const req = partitionRequest(s0, [ME, 2], [200_000n, 300_000n])
      const derived = s.derive(req)
      assert(derived !== null)
      const err = await refused(
        s.decidePartition(req, { alreadyRead: false, derived }),
        'conflict-reported',
        /proved my board lacks/
      )
      assert.deepStrictEqual(err.conflict, { statementId: new Uint8Array(32).fill(1), index: 7 })
      assert.deepStrictEqual(asked, ['reported:0:32'], 'refused before the read, without asking the network')

      reported = null
      network = new DefenseRefusal('quorum-disagrees', 'a majority of members hold another history')
      asked.length = 0
      await refused(s.decidePartition(req, { alreadyRead: false, derived }), 'quorum-disagrees')
      assert.deepStrictEqual(
        asked,
        ['reported:0:32', 'network:1'],
        'each defense asked once: the reported conflict before the read, the network after it'
      )

      network = null
      asked.length = 0
      assert.notEqual(await s.decidePartition(req, { alreadyRead: true }), null)
      assert.deepStrictEqual(
        asked,
        ['reported:1:32', 'network:1'],
        'the proposer, who read already, asks both after its read'
      )
    })
  })
})
