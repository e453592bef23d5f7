import { statementId } from '../protocol/statement.js'
import { stateHash, type SignedState } from '../protocol/state.js'
import { decodeBoardEntry } from './entries.js'
import type { Entry } from './raft/index.js'

import type { Bip340Check } from '../protocol/keys.js'

/** One BIP340 check the board state machine will make: `signature` over `hash` by `key`. */
export type SignatureCheck = Bip340Check

/**
 * The signature checks that applying `entry` makes (board/pool-board.ts), so that they can be run
 * ahead of time, off the Raft thread, and found in the signature cache when the entry is applied.
 * Only a speed-up: what applying decides does not depend on it. Undecodable entries have none.
 */
export function signatureChecksOf(entry: Entry): SignatureCheck[] {
  const decoded = decodeBoardEntry(entry)
  switch (decoded.kind) {
    case 'statement': {
      const id = statementId(decoded.statement)
      return decoded.statement.signatures
        .filter(({ index }) => index < decoded.statement.actives.length)
        .map(({ index, signature }) => ({ signature, hash: id, key: decoded.statement.actives[index] }))
    }
    case 'state':
      return stateChecks(decoded.signed)
    case 'genesis':
      return stateChecks(decoded.signed)
    case 'evidence': {
      const ev = decoded.evidence
      return [
        { signature: ev.firstSignature, hash: statementId(ev.first), key: ev.member },
        { signature: ev.secondSignature, hash: statementId(ev.second), key: ev.member }
      ]
    }
    default:
      return []
  }
}

function stateChecks(signed: SignedState): SignatureCheck[] {
  const members = signed.state.pool.members
  if (signed.signatures.length !== members.length) return []
  const h = stateHash(signed.state)
  return members.map((key, i) => ({ signature: signed.signatures[i], hash: h, key }))
}
