import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { h } from './dom.js'

/** Round latency over time (uPlot): one point per round, failed rounds in their own series. */
export class LatencyChart {
  readonly root: HTMLElement
  private plot: uPlot | null = null
  private count = -1

  constructor(
    private readonly width: number,
    private readonly height: number
  ) {
    this.root = h('div', { class: 'latency', 'data-test': 'latency-chart' })
  }

  update(points: Array<{ atMs: number; latencyMs: number; ok: boolean }>): void {
    if (points.length === this.count) return
    this.count = points.length
    const xs = points.map((p) => p.atMs / 1000)
    const data: uPlot.AlignedData = [
      xs,
      points.map((p) => (p.ok ? p.latencyMs : null)),
      points.map((p) => (p.ok ? null : p.latencyMs))
    ]
    if (this.plot === null) {
      // As wide as its panel once on the page (the given width before that).
      const width = Math.max(200, (this.root.parentElement?.clientWidth ?? this.width + 20) - 20)
      this.plot = new uPlot(
        {
          width,
          height: this.height,
          series: [
            {},
            { label: 'ok', stroke: '#1b7837', points: { size: 6 }, paths: () => null },
            { label: 'failed', stroke: '#b2182b', points: { size: 6 }, paths: () => null }
          ],
          axes: [{}, { label: 'ms', size: 50 }],
          scales: { x: { time: true } }
        },
        data,
        this.root
      )
    } else {
      this.plot.setData(data)
    }
  }
}
