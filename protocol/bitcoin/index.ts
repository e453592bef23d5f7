/**
 * The pool's transactions on chain (docs/protocol.md section 9): Taproot outputs owned by MuSig2
 * aggregates, the Decker-Wattenhofer state graph, signing rounds, the checker, exit export.
 * Pure like the rest of protocol/; loading it instantiates libsecp256k1-zkp's WebAssembly once.
 */
export * from './checker.js'
export * from './export.js'
export * from './graph.js'
export * from './musig.js'
export * from './script.js'
export * from './watch.js'
