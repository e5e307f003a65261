/**
 * The benchmark's protocol-only load: one of five processes, each a daemon
 * (node core, UDP, log files) with no RPC and no chat, originating broadcasts
 * itself (as fast as flow control admits them, or at a fixed rate) and
 * counting the messages that become stable (delivered in the final total
 * order). With fsync off the log files are written but never synced: the
 * figure group-communication toolkits without persistence publish. At a fixed
 * rate it reports the daemon's own latency figures: what the protocol, the
 * disk and the cores allow before any RPC or chat work. Run by tools/bench;
 * prints one JSON line.
 *
 *   protocolNode.js <id> <config> <key file> <data dir> <start at (epoch ms)> <warm-up ms> <measure ms> <payload bytes> <fsync on|off> [<broadcasts per second>]
 */
import { loadClusterConfig } from '../config/clusterConfig.js';
import { loadClusterKey } from '../config/clusterKey.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../daemon/logger.js';
import type { Application } from '../node/application.js';
import type { OrderChange } from '../broadcast/tentativeOrder.js';
import type { Message } from '../broadcast/types.js';
import { nodeFileSystem, type FileSystem } from '../storage/fileSystem.js';
import type { Timings } from '../daemon/timings.js';

/** Own broadcasts submitted and not yet confirmed: enough to keep the send window full. */
const inFlight = 6000;

export interface ProtocolNodeResult {
  /** Messages that became stable here during the measured time. */
  delivered: number;
  /** Own broadcasts confirmed during the measured time. */
  originated: number;
  measuredMs: number;
  /** CPU time (user and system) this process used during the measured time. */
  cpuMs: number;
  /** Journal writes with their fdatasync (a no-op with fsync off). */
  groupCommits: number;
  eventLoopDelayMaxMs: number;
  journalSyncP50Ms: number;
  /** At a fixed rate: the daemon's timings of its own broadcasts over the measured time (see daemon/timings.ts). */
  timings?: Timings;
}

/** Counts stable messages: the chat's work left out. */
class DeliveryCounter implements Application {
  delivered = 0;

  apply(_ordered: OrderChange | undefined, stable: readonly Message[]): void {
    this.delivered += stable.length;
  }

  viewChanged(): void {}

  snapshot(): unknown {
    return { delivered: this.delivered };
  }

  digest(): string {
    return String(this.delivered);
  }
}

/** The real disk with every sync a no-op: nothing is durable, as in a toolkit without persistence. */
const unsyncedFileSystem: FileSystem = { ...nodeFileSystem, fsync: () => {}, fdatasync: (_file, done) => done(), syncInBackground: (_file, done) => setImmediate(done), syncDir: () => {} };

const sleepUntil = (epochMs: number) => new Promise((r) => setTimeout(r, Math.max(0, epochMs - Date.now())));

/** After the measured time at a fixed rate: long enough for its last broadcasts to be known stable everywhere. */
const settleMs = 1000;

/** Call `submit` `rate` times a second, on schedule (catching up after a late wake-up), while `running()`. */
async function submitAtRate(rate: number, running: () => boolean, submit: () => void): Promise<void> {
  const start = performance.now();
  for (let i = 0; running(); i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (running()) submit();
  }
}

async function main(): Promise<void> {
  const [id, configFile, keyFile, dataDir, startAtText, warmupText, measureText, bytesText, fsync, rateText] = process.argv.slice(2);
  const rate = rateText === undefined ? undefined : Number(rateText);
  if ((fsync !== 'on' && fsync !== 'off') || (rate !== undefined && !(rate > 0))) {
    throw new Error('usage: protocolNode.js <id> <config> <key file> <data dir> <start at> <warm-up ms> <measure ms> <payload bytes> <on|off> [<broadcasts per second>]');
  }
  const counter = new DeliveryCounter();
  const daemon = await Daemon.start({
    id: Number(id),
    config: loadClusterConfig(configFile),
    dataDir,
    logger: createLogger(Number(id), 'warn'),
    clusterKey: loadClusterKey(keyFile),
    application: () => counter,
    fileSystem: fsync === 'on' ? nodeFileSystem : unsyncedFileSystem,
  });
  daemon.announceStarted();
  const payload = 'x'.repeat(Number(bytesText));
  let originated = 0;
  let flooding = true;
  const submit = (): void => {
    if (!flooding) return;
    daemon.node.submit(payload, {
      confirmed: () => {
        originated++;
        submit();
      },
      // Refused only when the queue is full: try again a little later.
      refused: () => void setTimeout(submit, 1),
    });
  };
  const startAt = Number(startAtText);
  await sleepUntil(startAt);
  if (rate === undefined) for (let i = 0; i < inFlight; i++) submit();
  else void submitAtRate(rate, () => flooding, () => daemon.node.submit(payload, { confirmed: () => originated++, refused: () => undefined }));
  await sleepUntil(startAt + Number(warmupText));
  const before = { delivered: counter.delivered, originated, groupCommits: daemon.status(false).journal.syncs, at: performance.now(), cpu: process.cpuUsage() };
  daemon.timings.read(true);
  await sleepUntil(startAt + Number(warmupText) + Number(measureText));
  const status = daemon.status(false);
  const cpu = process.cpuUsage(before.cpu);
  const result: ProtocolNodeResult = {
    delivered: counter.delivered - before.delivered,
    originated: originated - before.originated,
    measuredMs: performance.now() - before.at,
    cpuMs: (cpu.user + cpu.system) / 1000,
    groupCommits: status.journal.syncs - before.groupCommits,
    eventLoopDelayMaxMs: status.timings.eventLoopDelay.maxMs,
    journalSyncP50Ms: status.timings.journalSync.p50Ms,
  };
  flooding = false;
  if (rate !== undefined) {
    // The last broadcasts' stability is timed too: every node keeps stepping (sending statuses) meanwhile.
    await new Promise((r) => setTimeout(r, settleMs));
    result.timings = daemon.timings.read(false);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await daemon.stop();
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`protocolNode: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
