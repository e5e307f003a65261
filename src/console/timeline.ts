/**
 * The console's memory of the last minutes: an event strip (faults, servers
 * going down and up, view changes, convergence after a heal) and a sample a
 * second of each server's throughput and tentative messages. Fed with
 * pictures and fault operations; the clock is passed in.
 */
import type { ClusterPicture, ConsoleEvent, EventKind, Sample, ServerCard, Timeline } from './api.js';

/** Events kept for the strip; older ones are dropped. */
export const maxEvents = 200;
/** Samples kept for the charts: five minutes at one a second. */
export const maxSamples = 300;
export const sampleIntervalMs = 1000;

export class ConsoleTimeline {
  private readonly events: ConsoleEvent[] = [];
  private readonly samples: Sample[] = [];
  private previous: ClusterPicture | undefined;
  /** Each server's ordered-message count at the last sample, for throughput. */
  private lastSample: { at: number; ordered: (number | undefined)[] } | undefined;
  /** When the last heal was asked for, until the digests agree. */
  private healAt: number | undefined;
  /** Counts changes: a reader sends the timeline again when it moved. */
  version = 0;

  get current(): Timeline {
    return { events: this.events, samples: this.samples };
  }

  record(at: number, kind: EventKind, text: string): void {
    this.events.push({ at, kind, text });
    this.version++;
    if (this.events.length > maxEvents) this.events.splice(0, this.events.length - maxEvents);
  }

  /** A heal was asked for: the next time every server up shares one digest, the time it took is an event. */
  healed(at: number): void {
    this.healAt = at;
  }

  /** Take a new picture in (events it shows, a sample a second). */
  observe(picture: ClusterPicture): void {
    if (this.previous) this.compare(this.previous, picture);
    this.previous = picture;
    this.noteConvergence(picture);
    this.sample(picture);
  }

  private compare(old: ClusterPicture, now: ClusterPicture): void {
    for (const card of now.servers) {
      const was = old.servers.find((s) => s.id === card.id);
      if (!was) continue;
      if (was.state !== card.state) this.record(now.at, 'server', `server ${card.id} is ${stateWords(card)}`);
      if (was.state !== 'down' && card.state !== 'down' && was.view.join() !== card.view.join()) {
        this.record(now.at, 'view', `server ${card.id} view {${was.view.join(',')}} -> {${card.view.join(',')}}`);
      }
    }
    if (!old.converged && now.converged && this.healAt === undefined) this.record(now.at, 'converged', `one digest again at servers {${now.digestGroups[0].join(',')}}`);
  }

  private noteConvergence(picture: ClusterPicture): void {
    if (this.healAt === undefined || !picture.converged) return;
    const seconds = Math.max(0, picture.at - this.healAt) / 1000;
    this.record(picture.at, 'converged', `one digest at servers {${picture.digestGroups[0].join(',')}}, ${seconds.toFixed(2)} s after the heal`);
    this.healAt = undefined;
  }

  private sample(picture: ClusterPicture): void {
    const ordered = picture.servers.map((s) => (s.state === 'down' ? undefined : s.seqVector.reduce((a, b) => a + b, 0)));
    const last = this.lastSample;
    if (last && picture.at - last.at < sampleIntervalMs) return;
    this.lastSample = { at: picture.at, ordered };
    if (!last) return;
    const seconds = (picture.at - last.at) / 1000;
    const throughput = ordered.map((n, i) => {
      const before = last.ordered[i];
      return n === undefined || before === undefined ? null : Math.max(0, n - before) / seconds;
    });
    const tentative = picture.servers.map((s) => (s.state === 'down' ? null : s.tentative));
    this.samples.push({ at: picture.at, throughput, tentative });
    if (this.samples.length > maxSamples) this.samples.splice(0, this.samples.length - maxSamples);
    this.version++;
  }
}

function stateWords(card: ServerCard): string {
  if (card.state === 'down') return 'down';
  if (card.state === 'storage failed') return `up but its storage failed: ${card.storageError ?? ''}`;
  return `up (pid ${card.pid})`;
}
