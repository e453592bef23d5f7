import { names, object, optionalInteger } from '../../api/body.js'
import { guarded } from '../../api/pool-routes.js'
import { ApiError, type Route } from '../../api/server.js'
import type { PoolService } from '../../pool/service.js'
import type { Censor } from './censor.js'
import type { LabEquivocation } from './equivocate.js'

// daemon/lab/node/: the lab's hooks inside a node in lab mode: the censoring leader (censor.ts),
// the coalition member (coalition.ts), the equivocating member (equivocate.ts) and their routes.

/**
 * Admin API routes of the lab's adversarial behaviours. Every one answers 403 (`lab-only`) on a
 * node without lab mode: adversarial behaviour is impossible outside the lab.
 *
 *     GET  /v1/lab/censor                     whose statements this node drops while it leads
 *     POST /v1/lab/censor {"member": NAME | null}   censor NAME's statements (null: stop)
 *     POST /v1/lab/equivocate {"with":[...],"timeoutMs"}   sign a conflicting partition (equivocate.ts)
 */
export function labRoutes(options: {
  lab: boolean
  censor: Censor
  pool: PoolService
  equivocation: LabEquivocation
}): Route[] {
  const { lab, censor, pool, equivocation } = options
  const requireLab = (): void => {
    if (!lab)
      throw new ApiError(
        403,
        'lab-only',
        'censoring is an adversarial lab behaviour: start the node with --lab (lab=1)'
      )
  }
  return [
    {
      method: 'GET',
      path: '/v1/lab/censor',
      handler: async () => {
        requireLab()
        return { censoring: censor.member }
      }
    },
    {
      method: 'POST',
      path: '/v1/lab/censor',
      handler: async ({ body }) => {
        requireLab()
        const member = (body as { member?: unknown } | null)?.member
        if (member === null) {
          censor.set(null)
          return { censoring: null }
        }
        if (typeof member !== 'string' || member.trim() === '')
          throw new ApiError(400, 'bad-request', 'member: expected a member name, or null to stop censoring')
        let target: { name: string; key: Uint8Array }
        try {
          target = pool.members.resolve(member)
        } catch (err) {
          throw new ApiError(404, 'unknown-member', (err as Error).message)
        }
        censor.set(target)
        return { censoring: censor.member }
      }
    },
    {
      method: 'POST',
      path: '/v1/lab/equivocate',
      handler: guarded(async ({ body }) => {
        const b = object(body)
        return await equivocation.equivocate({
          with: names(b.with, 'with'),
          timeoutMs: optionalInteger(b.timeoutMs, 'timeoutMs')
        })
      })
    }
  ]
}
