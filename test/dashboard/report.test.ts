import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEFENSE_SETS } from '../../daemon/lab/campaign/plan.js'
import { COLORS, renderCsv, renderHtml, wilson } from '../../daemon/lab/campaign/report.js'
import { screenshot, TestBrowser } from '../helpers/browser.js'
import { tempDir } from '../helpers/process.js'
import { everyDefenseSummary } from './fixtures.js'

/**
 * The lab's report page in Chromium (docs/lab.md, "the report"): with every defense set, every
 * legend entry and title is drawn whole inside the chart, legend entries do not overlap, bars
 * spread over the plot's width; the CSV carries the same cells with their intervals.
 */
describe('lab report in Chromium', function () {
  this.timeout(60_000)
  const temp = tempDir('poolboard-report-')
  let browser: TestBrowser
  before(async () => {
    browser = await TestBrowser.launch({ width: 1100, height: 900 })
  })
  after(async () => {
    await browser?.close()
    temp.cleanup()
  })

  it("every legend entry and every title is visible and whole; bars cover the plot's width", async () => {
    const s = everyDefenseSummary()
    const file = join(temp.path, 'report.html')
    writeFileSync(file, renderHtml(s))
    const page = await browser.page()
    await page.goto(`file://${file}`)
    type Box = { x: number; y: number; w: number; h: number }
    // Runs in the page (a string: this file is type-checked without the DOM's types).
    const boxes = (await page.evaluate(`(() => {
      const box = (e) => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height } }
      return {
        svg: box(document.querySelector('svg')),
        legend: [...document.querySelectorAll('.legend-entry')].map((g) => ({ defense: g.getAttribute('data-defense'), text: g.querySelector('text').textContent, box: box(g) })),
        titles: [...document.querySelectorAll('.chart-title, .panel-title')].map((t) => ({ text: t.textContent, box: box(t) })),
        bars: [...document.querySelectorAll('rect.bar')].map(box),
        whiskers: document.querySelectorAll('path.ci').length
      }
    })()`)) as {
      svg: Box
      legend: Array<{ defense: string; text: string; box: Box }>
      titles: Array<{ text: string; box: Box }>
      bars: Box[]
      whiskers: number
    }
    const inside = (b: Box): boolean =>
      b.x >= boxes.svg.x &&
      b.y >= boxes.svg.y &&
      b.x + b.w <= boxes.svg.x + boxes.svg.w + 0.5 &&
      b.y + b.h <= boxes.svg.y + boxes.svg.h + 0.5
    assert.deepEqual(
      boxes.legend.map((l) => l.text),
      [...DEFENSE_SETS],
      'one legend entry per defense set, each with its full name'
    )
    for (const l of boxes.legend) {
      assert.ok(
        l.box.w > 0 && inside(l.box),
        `legend entry ${l.defense} is inside the chart: ${JSON.stringify(l.box)} in ${JSON.stringify(boxes.svg)}`
      )
    }
    for (let i = 0; i < boxes.legend.length; i++) {
      for (let j = i + 1; j < boxes.legend.length; j++) {
        const a = boxes.legend[i].box
        const b = boxes.legend[j].box
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
        assert.ok(!overlap, `legend entries ${boxes.legend[i].defense} and ${boxes.legend[j].defense} do not overlap`)
      }
    }
    assert.equal(boxes.titles.length, 3)
    for (const t of boxes.titles) assert.ok(inside(t.box), `title "${t.text}" is whole`)
    assert.match(boxes.titles[0].text!, /108 runs, 7 members, n = 3 runs per bar/)
    assert.match(boxes.titles[1].text!, /C fooled .*7 members, n = 3 runs per bar/)
    const right = Math.max(...boxes.bars.map((b) => b.x + b.w))
    const left = Math.min(...boxes.bars.map((b) => b.x))
    assert.ok(
      right - left > 0.8 * boxes.svg.w,
      `bars span the plot (${Math.round(right - left)} of ${Math.round(boxes.svg.w)} px)`
    )
    assert.equal(boxes.whiskers, boxes.bars.length, 'an error bar over every bar')
    assert.match((await page.locator('body').textContent()) ?? '', /poolboard 0\.1\.0 on 2 x test CPU/)
    await screenshot(page, 'lab-report.png')
    assert.deepEqual(browser.errors, [])
  })

  it('the safest setting is not red; the CSV has a line per cell with its 95% interval', () => {
    const red = (hex: string): boolean => {
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16))
      return r > 150 && g < 100 && b < 100
    }
    assert.ok(!red(COLORS.all), `all is ${COLORS.all}`)
    const s = everyDefenseSummary()
    const lines = renderCsv(s).trim().split('\n')
    assert.equal(lines.length, 1 + s.cells.length)
    const head = lines[0].split(',')
    const row = lines.find((l) => l.startsWith('4,none,'))!.split(',')
    const at = (k: string): string => row[head.indexOf(k)]
    assert.deepEqual([at('members'), at('runs'), at('fooled'), at('fooled_rate')], ['7', '3', '3', '1'])
    assert.equal(Number(at('fooled_low95')), Math.round(wilson(3, 3).low * 10_000) / 10_000)
    assert.ok(wilson(0, 3).high > 0.5 && wilson(0, 3).low === 0, 'few runs: a wide interval')
  })
})
