/**
 * A binary min-heap whose entries know their position, so any entry leaves
 * it in O(log n) the moment it is no longer wanted (a cleared timer holds no
 * memory until its time would have come). Used by the system clock's shared
 * deadline timer and by the manual clock.
 *
 * @internal
 * @module
 */

/** An entry: its position in the heap, -1 while it is in none. */
export interface HeapEntry {
  index: number;
}

export class IndexedHeap<T extends HeapEntry> {
  readonly #items: T[] = [];
  /** Whether `a` comes out before `b`. */
  readonly #before: (a: T, b: T) => boolean;

  constructor(before: (a: T, b: T) => boolean) {
    this.#before = before;
  }

  get size(): number {
    return this.#items.length;
  }

  /** The entry that comes out first, if any. */
  peek(): T | undefined {
    return this.#items[0];
  }

  push(entry: T): void {
    const items = this.#items;
    items.push(entry);
    this.#siftUp(entry, items.length - 1);
  }

  /** Takes `entry` out (it must be in the heap); its index becomes -1. */
  remove(entry: T): void {
    const items = this.#items;
    const index = entry.index;
    entry.index = -1;
    const last = items.pop() as T;
    if (last === entry) return;
    this.#siftDown(last, index);
    this.#siftUp(last, last.index);
  }

  #siftUp(entry: T, index: number): void {
    const items = this.#items;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = items[parentIndex] as T;
      if (!this.#before(entry, parent)) break;
      items[index] = parent;
      parent.index = index;
      index = parentIndex;
    }
    items[index] = entry;
    entry.index = index;
  }

  #siftDown(entry: T, index: number): void {
    const items = this.#items;
    const length = items.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && this.#before(items[right] as T, items[left] as T) ? right : left;
      const next = items[child] as T;
      if (!this.#before(next, entry)) break;
      items[index] = next;
      next.index = index;
      index = child;
    }
    items[index] = entry;
    entry.index = index;
  }
}
