import { BOARD_ENTRY_VERSION, ENTRY_KIND } from '../../../board/entries.js'
import { equalBytes, toHex } from '../../../protocol/bytes.js'
import { decodeStatement } from '../../../protocol/statement.js'

/**
 * A censoring leader (lab mode only: `poolboard lab censor --member NAME`): while this node leads
 * the board it drops every proposal of a partition statement that NAME signed, its own and those
 * members forward to it. The proposer sees its entry never commit; once leadership moves to an
 * honest member, proposing again commits it.
 */
export class Censor {
  private target: { name: string; key: Uint8Array } | null = null

  set(target: { name: string; key: Uint8Array } | null): void {
    this.target = target === null ? null : { name: target.name, key: new Uint8Array(target.key) }
  }

  get member(): { name: string; key: string } | null {
    return this.target === null ? null : { name: this.target.name, key: toHex(this.target.key) }
  }

  /** Why a proposal is dropped, or null. */
  reason(data: Uint8Array): string | null {
    const t = this.target
    if (t === null || data.length < 2 || data[0] !== BOARD_ENTRY_VERSION || data[1] !== ENTRY_KIND.statement)
      return null
    try {
      const s = decodeStatement(data.subarray(2))
      const i = s.actives.findIndex((k) => equalBytes(k, t.key))
      if (i >= 0 && s.signatures.some((x) => x.index === i)) return `censoring statements signed by ${t.name}`
    } catch {
      /* not a statement this censor can read: let the board judge it */
    }
    return null
  }
}
