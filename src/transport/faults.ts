/**
 * Injected network faults, applied where datagrams leave and enter a daemon:
 * real drops of real datagrams, so that a partition or lossy link can be
 * made on one machine without touching the kernel.
 */
import type { ServerId } from '../broadcast/types.js';

export interface FaultSettings {
  /** Servers this daemon neither sends to nor hears from. */
  readonly blocked: readonly ServerId[];
  /** Probability (0-1) of dropping a datagram sent to the server. */
  readonly lossTo: Readonly<Record<string, number>>;
  /** Probability (0-1) of dropping a datagram received from the server. */
  readonly lossFrom: Readonly<Record<string, number>>;
}

export const noFaultSettings: FaultSettings = { blocked: [], lossTo: {}, lossFrom: {} };

export class FaultFilter {
  private settings: FaultSettings = noFaultSettings;
  /** Datagrams dropped on the way out (tests check that injected loss really dropped some). */
  droppedOut = 0;

  constructor(private readonly random: () => number = Math.random) {}

  get current(): FaultSettings {
    return this.settings;
  }

  set(settings: FaultSettings): void {
    this.settings = settings;
  }

  /** Whether a datagram to `to` is dropped. */
  dropOutgoing(to: ServerId): boolean {
    if (this.drop(to, this.settings.lossTo[to])) {
      this.droppedOut++;
      return true;
    }
    return false;
  }

  /** Whether a datagram from `from` is dropped. */
  dropIncoming(from: ServerId): boolean {
    return this.drop(from, this.settings.lossFrom[from]);
  }

  private drop(peer: ServerId, loss: number | undefined): boolean {
    if (this.settings.blocked.includes(peer)) return true;
    return loss !== undefined && loss > 0 && this.random() < loss;
  }
}

/** Injected faults in words, '' when there are none. */
export function describeFaults(settings: FaultSettings): string {
  return [
    settings.blocked.length > 0 ? `cut off from {${settings.blocked.join(',')}}` : '',
    ...Object.entries(settings.lossTo).map(([to, p]) => `dropping ${Math.round(p * 100)}% to ${to}`),
    ...Object.entries(settings.lossFrom).map(([from, p]) => `dropping ${Math.round(p * 100)}% from ${from}`),
  ]
    .filter((p) => p !== '')
    .join(', ');
}
