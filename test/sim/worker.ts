// Worker thread: runs chunks of seeds for runner.ts.

import { parentPort } from 'node:worker_threads'
import { runChunk, type WorkerRequest } from './runner.js'

parentPort!.on('message', (req: WorkerRequest) => {
  void runChunk(req).then((reply) => {
    parentPort!.postMessage(reply)
  })
})
