import './style.css'
import { renderClusterPage } from './cluster-view.js'
import { renderLabPage } from './lab-view.js'
import { connect } from './live.js'
import { NodeView, type Snapshot } from './node-view.js'

/** The dashboard's one bundle: the page's kind is in <body data-page>. */
function main(): void {
  const app = document.getElementById('app')!
  const page = document.body.dataset.page
  if (page === 'node') {
    const view = new NodeView(false)
    app.replaceChildren(view.root)
    connect<Snapshot>({
      onSnapshot: (s) => {
        view.update(s)
        document.title = `${s.node.name} · poolboard`
      },
      onReachable: (ok, why) => {
        view.setReachable(ok, why)
      }
    })
  } else if (page === 'cluster') {
    renderClusterPage(app)
  } else if (page === 'lab') {
    renderLabPage(app)
  }
}

main()
