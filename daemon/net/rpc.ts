import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { Logger } from '../host/log.js'

/** A request handler: answers the request bytes of member `from`, or throws RpcError. */
export type RpcHandler = (request: Uint8Array, from: string, signal: AbortSignal) => Promise<Uint8Array>

/** An error to send back to the caller, with a stable code. */
export class RpcError extends Error {
  constructor(
    readonly code: string,
    message: string
  ) {
    super(message)
    this.name = 'RpcError'
  }
}

export interface MemberRpcOptions {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>
  isMember: (peerId: string) => boolean
  logger: Logger
}

/** Largest request or response, in bytes. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
/** Requests served at once, over all protocols. */
const MAX_CONCURRENT_REQUESTS = 64
const HANDLER_TIMEOUT_MS = 30_000
const STATUS_OK = 0
const STATUS_ERROR = 1
const MAX_ERROR_TEXT_BYTES = 4_096

/**
 * Request/response between members over libp2p: one stream per call, one length-prefixed request,
 * one length-prefixed response (a status byte, then the payload or an error code and message).
 * Only members are served; everything has a size limit and a timeout.
 */
export class MemberRpc {
  private readonly protocols: string[] = []
  private serving = 0

  constructor(private readonly options: MemberRpcOptions) {}

  async handle(protocol: string, handler: RpcHandler): Promise<void> {
    this.protocols.push(protocol)
    await this.options.libp2p.handle(
      protocol,
      async (stream, connection) => {
        const from = connection.remotePeer.toString()
        if (!this.options.isMember(from)) {
          stream.abort(new Error('not a pool member'))
          return
        }
        const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
        const signal = AbortSignal.timeout(HANDLER_TIMEOUT_MS)
        try {
          const request = (await lp.read({ signal })).subarray()
          let response: Uint8Array
          if (this.serving >= MAX_CONCURRENT_REQUESTS) {
            response = encodeError('busy', `more than ${MAX_CONCURRENT_REQUESTS} requests in progress`)
          } else {
            this.serving++
            try {
              response = encodeOk(await handler(request, from, signal))
            } catch (err) {
              response =
                err instanceof RpcError
                  ? encodeError(err.code, err.message)
                  : encodeError('internal', (err as Error).message)
              if (!(err instanceof RpcError))
                this.options.logger.warn({ protocol, from, err: (err as Error).message }, 'request handler failed')
            } finally {
              this.serving--
            }
          }
          await lp.write(response, { signal })
          await stream.close({ signal })
        } catch (err) {
          stream.abort(err as Error)
        }
      },
      { maxInboundStreams: MAX_CONCURRENT_REQUESTS, runOnLimitedConnection: false }
    )
  }

  /** Calls `protocol` on member `peerId`; resolves with the response payload or throws RpcError. */
  async call(peerId: string, protocol: string, request: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (request.length > MAX_MESSAGE_BYTES)
      throw new RpcError('too-large', `request of ${request.length} bytes exceeds ${MAX_MESSAGE_BYTES}`)
    const signal = AbortSignal.timeout(timeoutMs)
    let stream: Stream
    try {
      stream = await this.options.libp2p.dialProtocol(peerIdFromString(peerId), protocol, { signal })
    } catch (err) {
      throw new RpcError('unreachable', `cannot reach ${peerId}: ${(err as Error).message}`)
    }
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      await lp.write(request, { signal })
      const response = (await lp.read({ signal })).subarray()
      await stream.close({ signal }).catch(() => {})
      return decodeResponse(response)
    } catch (err) {
      stream.abort(err as Error)
      if (err instanceof RpcError) throw err
      throw new RpcError(signal.aborted ? 'timeout' : 'failed', `${protocol} to ${peerId}: ${(err as Error).message}`)
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.protocols.map(async (p) => {
        await this.options.libp2p.unhandle(p).catch(() => {})
      })
    )
  }
}

function encodeOk(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + payload.length)
  out[0] = STATUS_OK
  out.set(payload, 1)
  return out
}

function encodeError(code: string, message: string): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify({ code, message })).subarray(0, MAX_ERROR_TEXT_BYTES)
  const out = new Uint8Array(1 + text.length)
  out[0] = STATUS_ERROR
  out.set(text, 1)
  return out
}

function decodeResponse(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) throw new RpcError('malformed', 'empty response')
  if (bytes[0] === STATUS_OK) return bytes.subarray(1)
  if (bytes[0] !== STATUS_ERROR) throw new RpcError('malformed', `unknown response status ${bytes[0]}`)
  try {
    const { code, message } = JSON.parse(new TextDecoder().decode(bytes.subarray(1))) as {
      code?: unknown
      message?: unknown
    }
    throw new RpcError(typeof code === 'string' ? code : 'error', typeof message === 'string' ? message : 'error')
  } catch (err) {
    if (err instanceof RpcError) throw err
    throw new RpcError('malformed', 'unreadable error response')
  }
}
