// Public surface of the Raft core.

export {
  Raft,
  bootstrapState,
  joiningState,
  MAX_READ_CONTEXT_BYTES,
  MAX_TERM_OR_INDEX,
  type ProposeResult
} from './raft.js'
export {
  RAFT_CONFIG_DEFAULTS,
  RaftConfigError,
  resolveConfig,
  type RaftConfig,
  type RandomInt,
  type ResolvedRaftConfig
} from './config.js'
export { ProposalError, InconsistentStoreError, ConfChangeError, type ProposalRefusal } from './errors.js'
export {
  encodeConfEntry,
  decodeConfEntry,
  validateConfChange,
  applyConfEntry,
  EMPTY_CONFIGURATION,
  MAX_MEMBERS,
  MAX_NODE_ID_BYTES,
  type ConfChange,
  type ConfChangeKind,
  type ConfEntry
} from './confchange.js'
export { computeEntryHash, makeEntry, entryBytes, ZERO_HASH, HASH_BYTES, ENTRY_HASH_TAG } from './hash.js'
export { quorumSize } from './progress.js'
export type * from './types.js'
