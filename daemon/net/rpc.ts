import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { messageStreamToDuplex } from '@libp2p/utils'
import * as lp from 'it-length-prefixed'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
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

/**
 * Every call between two members travels on one long-lived stream that the caller opens to the
 * callee, requests and responses tagged with a call id. A stream per call cost a dial, a protocol
 * negotiation (a round trip) and a close handshake each time: some 48 of them per pool round.
 */
export const RPC_PROTOCOL = '/poolboard/rpc/1.0.0'

/** Largest request or response, in bytes. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
/** Requests served at once, over all members. */
const MAX_CONCURRENT_REQUESTS = 64
/** Requests served at once for one member: one member cannot take every slot. */
const MAX_CONCURRENT_REQUESTS_PER_MEMBER = 32
/** Calls waiting for their answer from one member, at most. */
const MAX_PENDING_CALLS_PER_MEMBER = 256
/** Inbound call streams from one connection: one per member, and a newer one while the older closes. */
const MAX_INBOUND_STREAMS = 4
const HANDLER_TIMEOUT_MS = 30_000
const OPEN_TIMEOUT_MS = 5_000
const MAX_PROTOCOL_BYTES = 255
const MAX_ERROR_TEXT_BYTES = 4_096

const KIND_REQUEST = 1
const KIND_RESPONSE = 2
const STATUS_OK = 0
const STATUS_ERROR = 1
/** kind, call id. */
const HEADER_BYTES = 5

interface PendingCall {
  resolve: (payload: Uint8Array) => void
  reject: (err: RpcError) => void
  timer: NodeJS.Timeout
  protocol: string
}

/** One outbound call stream to a member: its calls waiting for an answer, and frames not yet written. */
interface CallSession {
  readonly peer: string
  readonly stream: Stream
  readonly pending: Map<number, PendingCall>
  readonly writer: FrameWriter
  nextId: number
  closed: boolean
}

/**
 * Frames sent in the same turn of the event loop go out as one write: the muxer and the
 * encryption handle one chunk instead of one per frame.
 */
class FrameWriter {
  private frames: Uint8Array[] = []
  private scheduled = false

  constructor(private readonly stream: Stream) {}

  push(frame: Uint8Array): void {
    this.frames.push(lp.encode.single(frame).subarray())
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(() => {
      this.flush()
    })
  }

  private flush(): void {
    this.scheduled = false
    const frames = this.frames
    this.frames = []
    if (frames.length === 0) return
    if (this.stream.writeStatus !== 'writable') {
      // Closing fails the calls waiting on this stream at once rather than at their timeouts.
      this.stream.abort(new Error('the call stream is not writable'))
      return
    }
    try {
      // The stream buffers what the socket cannot take yet; what is queued is bounded by the
      // calls in flight (MAX_PENDING_CALLS_PER_MEMBER, MAX_CONCURRENT_REQUESTS) times their size.
      this.stream.send(frames.length === 1 ? frames[0] : concat(frames))
    } catch (err) {
      this.stream.abort(err as Error)
    }
  }
}

/**
 * Request/response between members over libp2p: one length-prefixed request, one length-prefixed
 * response (a status byte, then the payload or an error code and message), multiplexed by call id
 * over one stream per caller and callee. Only members are served; everything has a size limit and
 * a timeout, and a member's stream that breaks the framing is reset.
 */
export class MemberRpc {
  private readonly handlers = new Map<string, RpcHandler>()
  private readonly sessions = new Map<string, CallSession>()
  private readonly opening = new Map<string, Promise<CallSession>>()
  private readonly inbound = new Set<Stream>()
  private readonly servingPerMember = new Map<string, number>()
  private serving = 0
  private registered = false
  private stopped = false

  constructor(private readonly options: MemberRpcOptions) {}

  async handle(protocol: string, handler: RpcHandler): Promise<void> {
    assert(new TextEncoder().encode(protocol).length <= MAX_PROTOCOL_BYTES, `protocol name too long: ${protocol}`)
    assert(!this.handlers.has(protocol), `${protocol} is already handled`)
    this.handlers.set(protocol, handler)
    if (this.registered) return
    this.registered = true
    await this.options.libp2p.handle(
      RPC_PROTOCOL,
      (stream, connection) => {
        this.serve(stream, connection)
      },
      { maxInboundStreams: MAX_INBOUND_STREAMS, runOnLimitedConnection: false }
    )
  }

  /** Calls `protocol` on member `peerId`; resolves with the response payload or throws RpcError. */
  async call(peerId: string, protocol: string, request: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (request.length + HEADER_BYTES + 1 + MAX_PROTOCOL_BYTES > MAX_MESSAGE_BYTES)
      throw new RpcError('too-large', `request of ${request.length} bytes exceeds ${MAX_MESSAGE_BYTES}`)
    const name = new TextEncoder().encode(protocol)
    if (name.length > MAX_PROTOCOL_BYTES) throw new RpcError('too-large', `protocol name too long: ${protocol}`)
    if (this.stopped) throw new RpcError('stopped', 'the node is stopping')
    const deadlineMs = Date.now() + timeoutMs
    const session = await this.session(peerId, timeoutMs)
    if (session.pending.size >= MAX_PENDING_CALLS_PER_MEMBER)
      throw new RpcError('busy', `more than ${MAX_PENDING_CALLS_PER_MEMBER} calls to ${peerId} waiting`)
    const id = session.nextId
    session.nextId = (session.nextId + 1) >>> 0
    const frame = new Uint8Array(HEADER_BYTES + 1 + name.length + request.length)
    frame[0] = KIND_REQUEST
    new DataView(frame.buffer).setUint32(1, id)
    frame[HEADER_BYTES] = name.length
    frame.set(name, HEADER_BYTES + 1)
    frame.set(request, HEADER_BYTES + 1 + name.length)
    return await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          session.pending.delete(id)
          reject(new RpcError('timeout', `${protocol} to ${peerId}: no answer within ${timeoutMs} ms`))
        },
        Math.max(1, deadlineMs - Date.now())
      )
      session.pending.set(id, { resolve, reject, timer, protocol })
      session.writer.push(frame)
    })
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const session of this.sessions.values())
      this.closeSession(session, new RpcError('stopped', 'the node is stopping'))
    for (const stream of this.inbound) stream.abort(new Error('stopping'))
    this.inbound.clear()
    if (this.registered) await this.options.libp2p.unhandle(RPC_PROTOCOL).catch(() => {})
  }

  // ---------------------------------------------------------------------------------------------
  // Caller

  private async session(peer: string, timeoutMs: number): Promise<CallSession> {
    const existing = this.sessions.get(peer)
    if (existing !== undefined && !existing.closed) return existing
    let opening = this.opening.get(peer)
    if (opening === undefined) {
      opening = this.open(peer, Math.min(timeoutMs, OPEN_TIMEOUT_MS)).finally(() => {
        this.opening.delete(peer)
      })
      this.opening.set(peer, opening)
    }
    return await opening
  }

  private async open(peer: string, timeoutMs: number): Promise<CallSession> {
    let stream: Stream
    try {
      stream = await this.options.libp2p.dialProtocol(peerIdFromString(peer), RPC_PROTOCOL, {
        signal: AbortSignal.timeout(timeoutMs)
      })
    } catch (err) {
      throw new RpcError('unreachable', `cannot reach ${peer}: ${(err as Error).message}`)
    }
    if (this.stopped) {
      stream.abort(new Error('stopping'))
      throw new RpcError('stopped', 'the node is stopping')
    }
    // The callee may have refused the stream (not a member to it, stopping) before it was handed over.
    if (stream.status !== 'open' || stream.writeStatus !== 'writable')
      throw new RpcError('refused', `${peer} closed the call stream at once (not a member there, or stopping)`)
    const session: CallSession = {
      peer,
      stream,
      pending: new Map(),
      writer: new FrameWriter(stream),
      nextId: 0,
      closed: false
    }
    this.sessions.set(peer, session)
    stream.addEventListener(
      'close',
      () => {
        this.closeSession(session, new RpcError('failed', `the call stream to ${peer} closed`))
      },
      { once: true }
    )
    void this.readResponses(session)
    return session
  }

  private async readResponses(session: CallSession): Promise<void> {
    try {
      for await (const chunk of lp.decode(messageStreamToDuplex(session.stream).source, {
        maxDataLength: MAX_MESSAGE_BYTES
      })) {
        const frame = chunk.subarray()
        if (frame.length < HEADER_BYTES + 1 || frame[0] !== KIND_RESPONSE) {
          session.stream.abort(new Error('malformed response frame'))
          break
        }
        const id = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(1)
        const call = session.pending.get(id)
        if (call === undefined) continue // answered after its caller gave up
        session.pending.delete(id)
        clearTimeout(call.timer)
        try {
          call.resolve(decodeResponse(frame.subarray(HEADER_BYTES)))
        } catch (err) {
          call.reject(err as RpcError)
        }
      }
    } catch (err) {
      session.stream.abort(err as Error)
    }
    this.closeSession(session, new RpcError('failed', `the call stream to ${session.peer} ended`))
  }

  private closeSession(session: CallSession, err: RpcError): void {
    if (session.closed) return
    session.closed = true
    if (this.sessions.get(session.peer) === session) this.sessions.delete(session.peer)
    for (const call of session.pending.values()) {
      clearTimeout(call.timer)
      call.reject(new RpcError(err.code, `${call.protocol} to ${session.peer}: ${err.message}`))
    }
    session.pending.clear()
    if (session.stream.status === 'open') session.stream.abort(new Error(err.message))
  }

  // ---------------------------------------------------------------------------------------------
  // Callee

  private serve(stream: Stream, connection: Connection): void {
    const from = connection.remotePeer.toString()
    if (this.stopped || !this.options.isMember(from)) {
      stream.abort(new Error(this.stopped ? 'stopping' : 'not a pool member'))
      return
    }
    this.inbound.add(stream)
    const writer = new FrameWriter(stream)
    const read = async (): Promise<void> => {
      for await (const chunk of lp.decode(messageStreamToDuplex(stream).source, { maxDataLength: MAX_MESSAGE_BYTES })) {
        const frame = chunk.subarray()
        if (!this.options.isMember(from)) {
          stream.abort(new Error('not a pool member'))
          return
        }
        const request = parseRequest(frame)
        if (request === null) {
          this.options.logger.warn({ from }, 'call stream reset: a malformed request frame')
          stream.abort(new Error('malformed request frame'))
          return
        }
        void this.answer(request, from, writer)
      }
    }
    read()
      .catch((err: unknown) => {
        stream.abort(err as Error)
      })
      .finally(() => {
        this.inbound.delete(stream)
        if (stream.status === 'open')
          stream.close().catch(() => {
            stream.abort(new Error('close failed'))
          })
      })
  }

  private async answer(request: ParsedRequest, from: string, writer: FrameWriter): Promise<void> {
    const { id, protocol, payload } = request
    let response: Uint8Array
    const handler = this.handlers.get(protocol)
    const mine = this.servingPerMember.get(from) ?? 0
    if (handler === undefined) {
      response = encodeError('unreachable', `this member does not serve ${protocol}`)
    } else if (this.serving >= MAX_CONCURRENT_REQUESTS) {
      response = encodeError('busy', `more than ${MAX_CONCURRENT_REQUESTS} requests in progress`)
    } else if (mine >= MAX_CONCURRENT_REQUESTS_PER_MEMBER) {
      response = encodeError(
        'busy',
        `more than ${MAX_CONCURRENT_REQUESTS_PER_MEMBER} requests of one member in progress`
      )
    } else {
      this.serving++
      this.servingPerMember.set(from, mine + 1)
      try {
        response = encodeOk(await handler(payload, from, AbortSignal.timeout(HANDLER_TIMEOUT_MS)))
      } catch (err) {
        response =
          err instanceof RpcError ? encodeError(err.code, err.message) : encodeError('internal', (err as Error).message)
        if (!(err instanceof RpcError))
          this.options.logger.warn({ protocol, from, err: (err as Error).message }, 'request handler failed')
      } finally {
        this.serving--
        const left = (this.servingPerMember.get(from) ?? 1) - 1
        if (left === 0) this.servingPerMember.delete(from)
        else this.servingPerMember.set(from, left)
      }
    }
    if (response.length + HEADER_BYTES > MAX_MESSAGE_BYTES)
      response = encodeError('too-large', `response of ${response.length} bytes exceeds ${MAX_MESSAGE_BYTES}`)
    const frame = new Uint8Array(HEADER_BYTES + response.length)
    frame[0] = KIND_RESPONSE
    new DataView(frame.buffer).setUint32(1, id)
    frame.set(response, HEADER_BYTES)
    writer.push(frame)
  }
}

interface ParsedRequest {
  id: number
  protocol: string
  payload: Uint8Array
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function parseRequest(frame: Uint8Array): ParsedRequest | null {
  if (frame.length < HEADER_BYTES + 1 || frame[0] !== KIND_REQUEST) return null
  const nameBytes = frame[HEADER_BYTES]
  if (nameBytes === 0 || frame.length < HEADER_BYTES + 1 + nameBytes) return null
  let protocol: string
  try {
    protocol = strictUtf8.decode(frame.subarray(HEADER_BYTES + 1, HEADER_BYTES + 1 + nameBytes))
  } catch {
    return null
  }
  const id = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(1)
  return { id, protocol, payload: frame.subarray(HEADER_BYTES + 1 + nameBytes) }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
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
