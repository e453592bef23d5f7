/** One source of events: its owner emits, listeners (subscribed at construction) are called in order. */
export class EventSource<T> {
  private readonly listeners: Array<(event: T) => void> = []

  subscribe(listener: (event: T) => void): void {
    this.listeners.push(listener)
  }

  emit(event: T): void {
    for (const l of this.listeners) l(event)
  }
}

/** What a listener is handed: the subscription side of an EventSource. */
export type Events<T> = Pick<EventSource<T>, 'subscribe'>
