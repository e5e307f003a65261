/**
 * Heartbeat-based views: a server is in the view while something valid has
 * been heard from it within viewTimeoutMs. This server is always in its view.
 */
import type { ServerId } from './types.js';

export class Views {
  private readonly lastHeardAt: number[];
  private current: ServerId[];

  constructor(
    private readonly me: ServerId,
    serverCount: number,
    private readonly viewTimeoutMs: number,
  ) {
    this.lastHeardAt = new Array<number>(serverCount).fill(-Infinity);
    this.current = [me];
  }

  get view(): readonly ServerId[] {
    return this.current;
  }

  heard(from: ServerId, now: number): void {
    this.lastHeardAt[from - 1] = now;
  }

  /** Recompute at time now; returns the new view if it changed. Called every step, so it allocates only on a change. */
  update(now: number): readonly ServerId[] | undefined {
    let members = 0;
    let same = true;
    for (let id = 1; id <= this.lastHeardAt.length; id++) {
      if (id !== this.me && !this.isAlive(id, now)) continue;
      same &&= this.current[members] === id;
      members++;
    }
    if (same && members === this.current.length) return undefined;
    this.current = this.lastHeardAt.map((_, i) => i + 1).filter((id) => id === this.me || this.isAlive(id, now));
    return this.current;
  }

  /** The next time a member could time out. */
  nextExpiryAt(): number {
    let next = Infinity;
    for (const id of this.current) if (id !== this.me) next = Math.min(next, this.lastHeardAt[id - 1] + this.viewTimeoutMs);
    return next;
  }

  private isAlive(id: ServerId, now: number): boolean {
    return now - this.lastHeardAt[id - 1] <= this.viewTimeoutMs;
  }
}
