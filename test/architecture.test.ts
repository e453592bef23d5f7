/**
 * The map of the rooms (docs/architecture.md) holds: every relative import of every .ts file
 * points the way the table allows ("Layers point one way"), storage/ takes only types from board/
 * (but the one codec named there), and no file imports itself back through others ("No import
 * cycles"). The table is read from the doc, so the doc and the code cannot drift apart.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SOURCE_FOLDERS = ['protocol', 'board', 'storage', 'daemon', 'test', 'bench']

interface Room {
  path: string
  /** Rooms it may import values and types from. */
  values: string[]
  /** Rooms it may import only types from. */
  types: string[]
  /** Files it may import values from although their room is types-only. */
  files: string[]
  everything: boolean
}

interface Import {
  from: string
  to: string
  typeOnly: boolean
  line: string
}

/** The rooms table of docs/architecture.md: `| \`room/\` | what it holds | may import |`. */
function readRooms(): Room[] {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8')
  const rooms: Room[] = []
  for (const row of doc.split('\n')) {
    const cells = row.split('|').map((c) => c.trim())
    if (cells.length < 5 || !/^`[^`]+\/`$/.test(cells[1])) continue
    const mayImport = cells[3]
    const room: Room = {
      path: cells[1].slice(1, -1),
      values: [],
      types: [],
      files: [],
      everything: mayImport === 'everything'
    }
    for (const m of mayImport.matchAll(/`([^`]+)`( \(types\))?/g)) {
      if (m[1].endsWith('.ts')) room.files.push(m[1])
      else if (m[2] !== undefined) room.types.push(m[1])
      else room.values.push(m[1])
    }
    assert(
      room.everything || mayImport === 'nothing' || room.values.length + room.types.length > 0,
      `docs/architecture.md: cannot read what ${room.path} may import: "${mayImport}"`
    )
    rooms.push(room)
  }
  return rooms
}

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${e.name}`
    if (e.isDirectory()) out.push(...sourceFiles(path))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

// `import … from '…'`, `export … from '…'` (over several lines too), `import '…'` and `import('…')`.
const IMPORT =
  /(?:^|\n)[ \t]*(?:import|export)[ \t]+(type[ \t]+)?([^;'"]*?)[ \t]*from[ \t]*['"]([^'"]+)['"]|(?:^|\n)[ \t]*import[ \t]*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

function importsOf(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), 'utf8')
  const out: Import[] = []
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[3] ?? m[4] ?? m[5]
    if (!spec.startsWith('.')) continue // a package
    if (!/\.(js|ts)$/.test(spec)) continue // an asset the bundler inlines (the dashboard's CSS)
    const to = normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts')
    const names = (m[2] ?? '').trim()
    const everyNameIsAType =
      names.startsWith('{') &&
      names
        .slice(1, -1)
        .split(',')
        .map((n) => n.trim())
        .filter((n) => n !== '')
        .every((n) => n.startsWith('type '))
    out.push({ from: file, to, typeOnly: m[1] !== undefined || everyNameIsAType, line: m[0].trim().split('\n').pop()! })
  }
  return out
}

function roomOf(rooms: readonly Room[], file: string): Room {
  const room = [...rooms].sort((a, b) => b.path.length - a.path.length).find((r) => file.startsWith(r.path))
  assert(room !== undefined, `${file} is in no room of docs/architecture.md: add its folder to the table`)
  return room
}

describe('architecture: the rooms and their imports (docs/architecture.md)', () => {
  const rooms = readRooms()
  const files = SOURCE_FOLDERS.flatMap(sourceFiles)
  const imports = files.flatMap(importsOf)

  it('the table names every source folder, and every room it names exists', () => {
    for (const folder of ['protocol/', 'board/', 'storage/', 'daemon/', 'test/', 'bench/'])
      assert(
        rooms.some((r) => r.path === folder),
        `docs/architecture.md has no row for ${folder}`
      )
    for (const r of rooms) {
      assert(
        files.some((f) => f.startsWith(r.path)),
        `docs/architecture.md names ${r.path}, which holds no .ts file`
      )
      for (const other of [...r.values, ...r.types])
        assert(
          rooms.some((x) => x.path === other),
          `${r.path} may import ${other}, which is no room of the table`
        )
    }
    for (const f of files) roomOf(rooms, f)
    assert(imports.length > 500, `expected the whole tree's imports, read ${imports.length}`)
  })

  it('every import resolves to a file of the tree', () => {
    const known = new Set(files)
    const missing = imports.filter((i) => !known.has(i.to)).map((i) => `${i.from}: ${i.line}`)
    assert.deepEqual(missing, [])
  })

  it('layers point one way: every import goes where its room may import', () => {
    const violations: string[] = []
    for (const i of imports) {
      const from = roomOf(rooms, i.from)
      const to = roomOf(rooms, i.to)
      if (from === to || from.everything) continue
      if (from.values.includes(to.path)) continue
      if (from.types.includes(to.path) && (i.typeOnly || from.files.includes(i.to))) continue
      const why = from.types.includes(to.path)
        ? `${from.path} may import only types from ${to.path}`
        : `${from.path} may not import ${to.path}`
      violations.push(`${i.from} imports ${i.to}: ${why} (${i.line})`)
    }
    assert.deepEqual(violations, [], `layer violations:\n${violations.join('\n')}`)
  })

  it('no import cycles, types included', () => {
    const edges = new Map<string, string[]>()
    for (const i of imports) edges.set(i.from, [...(edges.get(i.from) ?? []), i.to])
    // Tarjan's strongly connected components: a component of more than one file is a cycle.
    let next = 0
    const index = new Map<string, number>()
    const low = new Map<string, number>()
    const stack: string[] = []
    const onStack = new Set<string>()
    const cycles: string[][] = []
    const visit = (v: string): void => {
      index.set(v, next)
      low.set(v, next++)
      stack.push(v)
      onStack.add(v)
      for (const w of edges.get(v) ?? []) {
        if (w === v) {
          cycles.push([v])
          continue
        }
        if (!index.has(w)) {
          visit(w)
          low.set(v, Math.min(low.get(v)!, low.get(w)!))
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v)!, index.get(w)!))
        }
      }
      if (low.get(v) !== index.get(v)) return
      const component: string[] = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) cycles.push(component.sort())
    }
    for (const f of files) if (!index.has(f)) visit(f)
    assert.deepEqual(
      cycles.map((c) => c.join(' <-> ')),
      [],
      'import cycles'
    )
  })

  it('reads what it checks: a type-only import, a value import, a multi-line import', () => {
    const sample = importsOf('storage/pool-store.ts')
    assert(
      sample.some((i) => i.to === 'board/pool-board.ts' && i.typeOnly),
      'the multi-line `import type { … } from` of board/pool-board.ts'
    )
    assert(
      sample.some((i) => i.to === 'protocol/codec.ts' && !i.typeOnly),
      'a value import'
    )
  })
})
