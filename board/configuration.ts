import { EncodeError, type Reader, type Writer } from '../protocol/codec.js'
import { MAX_NODE_ID_BYTES } from './raft/confchange.js'
import type { Configuration, NodeId } from './raft/types.js'

/** The Raft core's longest node id (the store's limit; the wire's is maxNodeIdBytes). */
export { MAX_NODE_ID_BYTES }

/**
 * The one encoding of a Raft configuration outside the Raft log: in snapshots on the wire
 * (board/wire.ts) and in the stored snapshot meta (storage/raft-store.ts). The log's own
 * `initialize` entry keeps the Raft core's conf-entry encoding (board/raft/confchange.ts).
 *
 *   configuration = count || voter id* || count || learner id*
 *
 * Counts are CompactSize varints; ids are non-empty varint-length UTF-8 strings.
 */

export interface ConfigurationLimits {
  /** Most voters plus learners. */
  readonly maxNodes: number
  /** Longest node id, in UTF-8 bytes. */
  readonly maxNodeIdBytes: number
}

/** Writes `c`; errors name `field` (e.g. `snapshot: configuration: voters`). */
export function writeConfiguration(w: Writer, c: Configuration, limits: ConfigurationLimits, field: string): void {
  const { voters, learners } = c
  if (voters.length + learners.length > limits.maxNodes) {
    throw new EncodeError(field, `${voters.length + learners.length} nodes exceed limit ${limits.maxNodes}`)
  }
  w.count(voters.length, limits.maxNodes, `${field}: voters`)
  for (const id of voters) writeNodeId(w, id, limits, `${field}: voters`)
  w.count(learners.length, limits.maxNodes, `${field}: learners`)
  for (const id of learners) writeNodeId(w, id, limits, `${field}: learners`)
}

export function readConfiguration(r: Reader, limits: ConfigurationLimits): Configuration {
  const voters = r.array('voters', limits.maxNodes, () => readNodeId(r, limits), 2)
  const learners = r.array('learners', limits.maxNodes - voters.length, () => readNodeId(r, limits), 2)
  return { voters, learners }
}

function writeNodeId(w: Writer, id: NodeId, limits: ConfigurationLimits, field: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new EncodeError(field, 'node id must be a non-empty string')
  w.string(id, limits.maxNodeIdBytes, field)
}

function readNodeId(r: Reader, limits: ConfigurationLimits): NodeId {
  const id = r.string('', limits.maxNodeIdBytes)
  if (id.length === 0) r.fail('', 'empty node id')
  return id
}
