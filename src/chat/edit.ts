/**
 * One batch of operations (reducer.ts, one immer produce): what it copied
 * it may change in place until it is over, when immer freezes the new state
 * with the rest. immer would copy as little, but each read or write through
 * a draft runs a proxy trap (0.25-0.5 µs each here): a request log changed
 * through drafts cost 20-30 µs per operation, more than all the rest of the
 * chat's work on it. Tails (tail.ts) and request logs (requests.ts) are
 * changed this way.
 */
export class Edit {
  private readonly copies = new Set<object>();

  /** Whether this batch made or copied `value`. */
  owns(value: object): boolean {
    return this.copies.has(value);
  }

  /** `value` itself if this batch made it, else a shallow copy (same prototype) that the batch may change in place. */
  own<T extends object>(value: T): Mutable<T> {
    if (this.copies.has(value)) return value as Mutable<T>;
    const copy = shallowCopy(value);
    this.copies.add(copy);
    return copy;
  }

  /**
   * The batch is over: freeze what it made, each object on its own. What
   * they hold is frozen already or made here too, so immer, finding them
   * frozen, does not walk them again to freeze them deep.
   */
  finish(): void {
    for (const value of this.copies) Object.freeze(value);
    this.copies.clear();
  }

  /** `value`, new: the batch may change it in place. */
  made<T extends object>(value: T): Mutable<T> {
    this.copies.add(value);
    return value as Mutable<T>;
  }
}

/**
 * The fastest copy found for each kind here (V8 11), of what is frozen: an
 * array spread (slice took 11 µs for a frozen array of 100, a spread
 * 0.3); a spread for a plain object; for a dictionary (no prototype) its
 * keys one by one (Object.assign took 0.8 µs for one key, this 0.2).
 */
function shallowCopy<T extends object>(value: T): Mutable<T> {
  if (Array.isArray(value)) return [...(value as unknown[])] as unknown as Mutable<T>;
  const prototype = Object.getPrototypeOf(value) as object | null;
  if (prototype === Object.prototype) return { ...value };
  const copy = Object.create(prototype) as Record<string, unknown>;
  for (const key of Object.keys(value)) copy[key] = (value as Record<string, unknown>)[key];
  return copy as Mutable<T>;
}

/** T with its own fields writable (not those of what it holds). */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };
