import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import type { Alarm, Configuration, Entry, Message, NodeId } from '../../board/raft/index.js'
import { BoardReplica, NODE_CLOCK, type BoardClock, type BoardOptions } from '../../daemon/replica/board.js'
import { openDatabase, type Database } from '../../storage/database.js'
import { RaftStore } from '../../storage/raft-store.js'
import { tempDir, waitFor } from './process.js'

/**
 * Real Boards on LevelDB in temporary directories, wired by an in-process network the test holds
 * in its hand: every message waits in a queue until the test delivers or drops it, and ticks happen
 * only when the test calls tick(). The tests of daemon/replica/board.ts drive exact interleavings
 * with it (a history snapshot overtaking a heartbeat, a stale snapshot of a deposed leader).
 */
export class TestBoards {
  readonly nodes = new Map<NodeId, TestBoardNode>()
  /** Messages sent and not yet delivered or dropped, in the order they were sent. */
  queue: Message[] = []
  private readonly temp = tempDir('poolboard-boards-')
  /** Added to the boards' clock (`nowMs`): how a test lets time pass without waiting. */
  clockOffsetMs = 0

  constructor(
    readonly configuration: Configuration,
    private readonly options: { snapshotEveryEntries?: number; idleTickMs?: number } = {}
  ) {}

  async start(ids: readonly NodeId[] = [...this.configuration.voters, ...this.configuration.learners]): Promise<void> {
    for (const id of ids) {
      const node = new TestBoardNode(
        this,
        id,
        join(this.temp.path, id),
        this.options.snapshotEveryEntries ?? 1_000,
        this.options.idleTickMs
      )
      this.nodes.set(id, node)
      await node.open(true)
    }
  }

  node(id: NodeId): TestBoardNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  send(m: Message): void {
    this.queue.push(m)
  }

  /**
   * Delivers the queued messages `which` selects (all by default) until none is left or sent
   * anew, waiting for the boards to handle them; messages not selected stay queued.
   */
  async deliver(which: (m: Message) => boolean = () => true): Promise<void> {
    let quietRounds = 0
    while (quietRounds < 3) {
      const now = this.queue.filter(which)
      this.queue = this.queue.filter((m) => !which(m))
      for (const m of now) this.nodes.get(m.to)?.receive(m)
      quietRounds = now.length === 0 ? quietRounds + 1 : 0
      // Let the boards' asynchronous writes finish and their Ready loops send what follows.
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /** Delivers what `which` selects until `work` settles, and returns its outcome. */
  async until<T>(work: Promise<T>, which: (m: Message) => boolean = () => true): Promise<T> {
    let settled = false
    const done = work.finally(() => {
      settled = true
    })
    done.catch(() => {})
    while (!settled) await this.deliver(which)
    return await done
  }

  /** Hands the lead from whoever has it to `id` (a follower in a leader's lease never campaigns). */
  async transfer(id: NodeId): Promise<void> {
    await waitFor(
      `${id} to lead`,
      async () => {
        const leader = [...this.nodes.values()].find((n) => n.board?.role === 'leader')
        leader?.board?.transferLeadership(id)
        await this.deliver()
        return this.node(id).board?.role === 'leader'
      },
      20_000,
      1
    )
  }

  drop(which: (m: Message) => boolean): Message[] {
    const dropped = this.queue.filter(which)
    this.queue = this.queue.filter((m) => !which(m))
    return dropped
  }

  /** Ticks node `id` (every node by default) once. */
  tick(id?: NodeId): void {
    for (const n of this.nodes.values()) if (id === undefined || n.id === id) n.tick()
  }

  /** Ticks `id` until it leads, delivering every message between ticks. */
  async elect(id: NodeId): Promise<void> {
    await waitFor(
      `${id} to lead`,
      async () => {
        this.tick(id)
        await this.deliver()
        return this.node(id).board?.role === 'leader'
      },
      20_000,
      1
    )
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) await n.close()
    this.temp.cleanup()
  }
}

export class TestBoardNode {
  board: BoardReplica | undefined
  db: Database | undefined
  store: RaftStore | undefined
  /** Entries applied, in order, since the node last opened. */
  applied: Entry[] = []
  alarms: Alarm[] = []
  fatal: Error | null = null
  private readonly ticks = new Set<() => void>()
  /** The period the board last asked its tick timer for. */
  tickPeriodMs = 0

  constructor(
    private readonly boards: TestBoards,
    readonly id: NodeId,
    readonly path: string,
    private readonly snapshotEveryEntries: number,
    private readonly idleTickMs?: number
  ) {}

  /** Opens the node's database (created with `create`) and its board, as `poolboard start` does. */
  async open(create = false): Promise<void> {
    this.db = await openDatabase(this.path, { create })
    this.store = await RaftStore.open(this.db)
    const ticks = this.ticks
    const clock: BoardClock = {
      ...NODE_CLOCK,
      nowMs: () => performance.now() + this.boards.clockOffsetMs,
      setInterval: (fn, ms) => {
        ticks.add(fn)
        this.tickPeriodMs = ms
        return fn
      },
      clearInterval: (handle) => {
        ticks.delete(handle as () => void)
      }
    }
    const options: BoardOptions = {
      selfId: this.id,
      store: this.store,
      transport: {
        send: (m) => {
          this.boards.send(m)
        },
        onMessage: (handler) => {
          this.handler = handler
        }
      },
      applier: {
        apply: async (entries) => {
          this.applied.push(...entries)
          return []
        }
      },
      logger: pino({ level: 'silent' }),
      timing: { tickMs: 100, heartbeatTicks: 1, electionTicks: 10, idleTickMs: this.idleTickMs },
      snapshotEveryEntries: this.snapshotEveryEntries,
      initialConfiguration: this.boards.configuration,
      onFatal: (err) => {
        this.fatal = err
      },
      onAlarm: (alarm) => {
        this.alarms.push(alarm)
      },
      clock
    }
    this.board = await BoardReplica.open(options)
    this.board.start()
  }

  private handler: ((m: Message) => void) | undefined

  /**
   * Holds every write of this node's store (a stalled disk) until the returned function is
   * called; reads go on. The Ready loop waits on the write it is handling meanwhile.
   */
  holdWrites(): () => void {
    const db = this.db!
    const batch = db.batch.bind(db) as (ops: unknown, options?: unknown) => Promise<void>
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    Object.assign(db, {
      batch: async (ops: unknown, options?: unknown) => {
        await gate
        await batch(ops, options)
      }
    })
    return () => {
      Object.assign(db, { batch })
      release()
    }
  }

  receive(m: Message): void {
    if (this.board !== undefined) this.handler?.(m)
  }

  tick(): void {
    for (const fn of this.ticks) fn()
  }

  async close(): Promise<void> {
    await this.board?.stop()
    this.board = undefined
    await this.db?.close()
    this.db = undefined
  }

  /** Stops the node and deletes its database, as a disk replaced after a failure would. */
  async wipe(): Promise<void> {
    await this.close()
    rmSync(this.path, { recursive: true, force: true })
  }
}
