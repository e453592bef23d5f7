import {
  encodeBlocksEntry,
  encodeGenesisEntry,
  encodeKickoutEntry,
  encodeMergeEntry,
  encodeStateEntry,
  encodeStatementEntry
} from '../../../board/entries.js'
import { PoolBoard, type ApplyResult } from '../../../board/pool-board.js'
import { makeEntry, ZERO_HASH, type Entry } from '../../../board/raft/index.js'
import { sha256 } from '../../../protocol/hash.js'
import { publicKeyOf, secretKeyFromSeed } from '../../../protocol/keys.js'
import { applyPayment, buildPartitionStatement, initialState, mergeState } from '../../../protocol/rules.js'
import { makeGenesis } from '../../../protocol/genesis.js'
import { indexOfKey, type PoolRef } from '../../../protocol/common.js'
import { signState, type PoolState, type SignedState } from '../../../protocol/state.js'
import { signStatement, withStatementSignature } from '../../../protocol/statement.js'
import { MAX_BLOCKS_PER_ENTRY } from '../../../board/entries.js'
import { homesOf } from '../../pool/view.js'
import type { PoolOp, RunResult } from './model.js'

/**
 * Replays a model run's pool operations on the real board state machine (board/pool-board.ts),
 * with real keys and BIP340 signatures: every update, partition, merge and kick-out becomes the
 * entry a node would propose, and must be accepted; at the end each member's balance where its
 * funds are must be the model's. This is what ties the model to the pool's rules.
 */

export interface BoardCheck {
  entries: number
  /** Signatures made (and verified by the board). */
  signatures: number
}

export class BoardCheckError extends Error {}

export function checkOnBoard(run: RunResult): BoardCheck {
  const p = run.params
  const secrets = Array.from({ length: p.members }, (_, i) =>
    secretKeyFromSeed(new TextEncoder().encode(`interactivity member ${i}`))
  )
  const keys = secrets.map(publicKeyOf)
  const secretOf = new Map(keys.map((k, i) => [Buffer.from(k).toString('hex'), secrets[i]]))
  const board = new PoolBoard()
  let prev = ZERO_HASH
  let index = 0
  let signatures = 0
  const push = (data: Uint8Array, what: string): ApplyResult => {
    const e: Entry = makeEntry(prev, ++index, 1, 'normal', data)
    prev = e.hash
    const { result } = board.apply(e)
    if (result.outcome !== 'accepted')
      throw new BoardCheckError(`the board refused ${what} (entry ${index}): ${result.reason}`)
    return result
  }
  const signAll = (state: PoolState): SignedState => {
    signatures += state.pool.members.length
    return {
      state,
      signatures: state.pool.members.map((k) => signState(state, secretOf.get(Buffer.from(k).toString('hex'))!))
    }
  }
  const genesis = makeGenesis({
    members: keys.map((key, i) => ({ key, peerId: `m${i}`, balanceSats: BigInt(p.balanceSats) })),
    funding: { txid: sha256(new TextEncoder().encode(`interactivity ${p.seed}`)), vout: 0 },
    kickoutDelayBlocks: p.kickoutDelayBlocks,
    creationHeight: 0
  })
  push(encodeGenesisEntry(genesis, signAll(initialState(genesis))), 'the genesis')
  const refs = new Map<number, PoolRef>([[0, { kind: 'root' }]])
  const refOf = (id: number, op: PoolOp): PoolRef => {
    const ref = refs.get(id)
    if (ref === undefined)
      throw new BoardCheckError(
        `${op.kind} at ${op.t.toFixed(1)} min names model pool ${id}, which the board never made`
      )
    return ref
  }
  const mineTo = (height: number): void => {
    while (board.chainHeight < height)
      push(encodeBlocksEntry(Math.min(MAX_BLOCKS_PER_ENTRY, height - board.chainHeight)), `blocks up to ${height}`)
  }
  for (const op of run.ops) {
    const what = `the ${op.kind} at ${op.t.toFixed(1)} min`
    switch (op.kind) {
      case 'update': {
        mineTo(op.heightT)
        const state = board.currentState(refOf(op.pool, op))!
        const next = applyPayment(
          state,
          { payer: keys[op.payer], payee: keys[op.payee], amountSats: BigInt(op.amountSats) },
          op.heightT
        )
        push(encodeStateEntry(signAll(next)), what)
        break
      }
      case 'partition': {
        mineTo(op.heightT)
        const parent = board.currentState(refOf(op.pool, op))!
        const actives = op.actives.map((m) => keys[m])
        const balances = actives.map((k) => parent.balances[indexOfKey(parent.pool.members, k)])
        let stmt = buildPartitionStatement(parent, actives, balances, op.heightT)
        for (const k of stmt.actives) {
          stmt = withStatementSignature(stmt, k, signStatement(stmt, secretOf.get(Buffer.from(k).toString('hex'))!))
          signatures++
        }
        const r = push(encodeStatementEntry(stmt), what)
        refs.set(op.created, r.createdPool!)
        break
      }
      case 'merge': {
        mineTo(op.heightT)
        const fold = board.foldPartitions(refOf(op.pool, op))
        if (!fold.ok) throw new BoardCheckError(`${what}: ${fold.reason}`)
        push(encodeMergeEntry(signAll(mergeState(fold.state, fold.balances, op.heightT))), what)
        break
      }
      case 'kickout': {
        mineTo(op.height)
        const ref = refOf(op.pool, op)
        const r = push(
          encodeKickoutEntry({ pool: ref, stateNumber: board.currentState(ref)!.stateNumber, member: keys[op.member] }),
          what
        )
        if (op.created !== null) {
          if (r.createdPool === null)
            throw new BoardCheckError(`${what}: the model continues the pool, the board does not`)
          refs.set(op.created, r.createdPool)
        }
        break
      }
    }
  }
  board.checkConsistency()
  const home = homesOf(board)
  keys.forEach((k, m) => {
    const h = home(k)
    const sats = h === null ? 0 : Number(h.view.members[h.index].balanceSats)
    if (sats !== run.finalBalances[m])
      throw new BoardCheckError(
        `member ${m}: the model ends with ${run.finalBalances[m]} sats where its funds are, the board with ${sats}`
      )
  })
  return { entries: index, signatures }
}
