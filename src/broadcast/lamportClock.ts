/**
 * This server's Lamport clock (docs/spec.md section 2). Invariant: it never goes
 * back, and every timestamp it hands out is larger than every timestamp
 * this server handed out or accepted before. Across a crash that holds only
 * because the clock is journaled before anything that carries it leaves
 * (durability.ts).
 */
export class LamportClock {
  constructor(private current = 0) {}

  get value(): number {
    return this.current;
  }

  /**
   * The timestamp of a new own message, above `after` too: a client that
   * saw timestamp `after` elsewhere (its earlier messages on another server)
   * gets a message ordered after everything it saw.
   */
  next(after = 0): number {
    this.current = Math.max(this.current, after) + 1;
    return this.current;
  }

  /** A peer's message with timestamp ts was accepted: the clock moves past it. */
  witness(ts: number): void {
    this.current = Math.max(this.current, ts) + 1;
  }
}
