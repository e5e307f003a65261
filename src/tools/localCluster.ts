/**
 * Operations on the local cluster (the one `make run` starts, or a test
 * cluster): start, stop, crash, relaunch, status, and fault injection.
 * tools/cluster prints what these return; tools/chaos drives them.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { ChorusConnection } from '../client/connection.js';
import { serverById, type ClusterConfig, type ServerAddress } from '../config/clusterConfig.js';
import type { ServerStatus as DaemonServerStatus } from '../daemon/controlServer.js';
import { ChorusError } from '../errors.js';
import { noFaultSettings, type FaultSettings } from '../transport/faults.js';
import { loadFaults, saveFaults } from '../transport/faultsFile.js';
import { ensureClusterKey } from '../config/clusterKey.js';
import { inNamespace, kernelRules, loadNetnsPlan, saveNetnsPlan, setKernelFaults, type NetnsPlan } from './netns.js';
import { clusterKeyFile, controlCall, daemonLogFile, launchDaemon, runningPid, serverDir, stopDaemon, type LocalClusterPaths } from './clusterProcesses.js';


/** A server's status; in a namespaced cluster its faults are the kernel's, with the nftables rules in force. */
export type ClusterServerStatus = DaemonServerStatus & { readonly kernelRules?: readonly string[] };

export class LocalCluster {
  constructor(
    readonly config: ClusterConfig,
    readonly paths: LocalClusterPaths,
    /** Extra daemon arguments for start and relaunch (tests use faster timers). */
    private readonly daemonArgs: readonly string[] = [],
  ) {}

  /**
   * Set when the data root holds a namespaced cluster (tools/cluster start
   * --netns): daemons run in namespaces, faults are nftables rules. Read from
   * its file each time: another tool (or the console) may have changed the faults.
   */
  get netns(): NetnsPlan | undefined {
    return loadNetnsPlan(this.paths.dataRoot);
  }

  get ids(): number[] {
    return this.config.servers.map((s) => s.id);
  }

  pid(id: number): number | undefined {
    return runningPid(this.paths, id);
  }

  /** Start every daemon that is not running and wait until each answers. Returns the ids started. */
  async start(): Promise<number[]> {
    ensureClusterKey(clusterKeyFile(this.paths));
    const started: number[] = [];
    for (const server of this.config.servers) {
      if (this.pid(server.id) !== undefined) continue;
      await this.launch(server);
      started.push(server.id);
    }
    return started;
  }

  /** Stop every daemon cleanly; returns how many were running. */
  async stop(): Promise<number> {
    let stopped = 0;
    for (const id of this.ids) if (await stopDaemon(this.paths, id, 'SIGTERM')) stopped++;
    return stopped;
  }

  /** SIGTERM: a clean stop of one server. False if it was not running. */
  stopOne(id: number): Promise<boolean> {
    serverById(this.config, id);
    return stopDaemon(this.paths, id, 'SIGTERM');
  }

  /** SIGKILL: a crash. False if it was not running. */
  kill(id: number): Promise<boolean> {
    serverById(this.config, id);
    return stopDaemon(this.paths, id, 'SIGKILL');
  }

  /** Start a stopped server again from its log files. False if it was running. */
  async relaunch(id: number): Promise<boolean> {
    const server = serverById(this.config, id);
    if (this.pid(id) !== undefined) return false;
    await this.launch(server);
    return true;
  }

  /** Server id's status; `digest: false` skips hashing its chat state (slow with a long history). */
  async status(id: number, digest = true): Promise<ClusterServerStatus | undefined> {
    const st = await controlCall(this.paths, id, 'status', { digest });
    const plan = this.netns;
    if (!st || !plan) return st;
    return { ...st, faults: plan.faults[id] ?? noFaultSettings, kernelRules: kernelRules(plan, id) };
  }

  /** In a namespaced cluster (its record read once by the caller), statuses with the kernel's faults in place of the daemons' own (which are not used). */
  static withKernelFaults(plan: NetnsPlan | undefined, statuses: readonly (ClusterServerStatus | undefined)[]): (ClusterServerStatus | undefined)[] {
    if (!plan) return [...statuses];
    return statuses.map((st) => st && { ...st, faults: plan.faults[st.id] ?? noFaultSettings });
  }

  statuses(digest = true): Promise<(ClusterServerStatus | undefined)[]> {
    return Promise.all(this.ids.map((id) => this.status(id, digest)));
  }

  /** Only servers in the same group hear each other; servers not named are isolated. Returns, per server, whether it was down. */
  async partition(groups: number[][]): Promise<{ id: number; hears: number[]; down: boolean }[]> {
    const named = groups.flat();
    for (const id of named) serverById(this.config, id);
    const twice = named.find((id, i) => named.indexOf(id) !== i);
    if (twice !== undefined) throw new ChorusError('INVALID_ARGUMENT', `server ${twice} is in two groups`);
    const result: { id: number; hears: number[]; down: boolean }[] = [];
    for (const id of this.ids) {
      const hears = groups.find((g) => g.includes(id)) ?? [id];
      const blocked = this.ids.filter((other) => !hears.includes(other));
      const current = await this.currentFaults(id);
      result.push({ id, hears, down: (await this.applyFaults(id, { ...current, blocked })) === 'saved' });
    }
    return result;
  }

  /** Drop `probability` of datagrams from i to j (and j to i unless oneway). */
  async loss(i: number, j: number, probability: number, oneway: boolean): Promise<{ from: number; to: number; down: boolean }[]> {
    serverById(this.config, i);
    serverById(this.config, j);
    if (i === j) throw new ChorusError('INVALID_ARGUMENT', 'loss needs two different servers');
    const links: [number, number][] = oneway ? [[i, j]] : [[i, j], [j, i]];
    const result: { from: number; to: number; down: boolean }[] = [];
    for (const [from, to] of links) {
      const current = await this.currentFaults(from);
      const lossTo: Record<string, number> = { ...current.lossTo, [to]: probability };
      if (probability === 0) delete lossTo[to];
      result.push({ from, to, down: (await this.applyFaults(from, { ...current, lossTo })) === 'saved' });
    }
    return result;
  }

  /** Every server at once: healed one by one, the first ones would be busy catching up while the last still drop. */
  async heal(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.applyFaults(id, noFaultSettings)));
  }

  /** Through the control endpoint if the server runs, else into its faults file for its next start; nftables rules in a namespaced cluster. */
  private async applyFaults(id: number, settings: FaultSettings): Promise<'live' | 'saved'> {
    const plan = this.netns;
    if (plan) {
      setKernelFaults(plan, id, settings);
      saveNetnsPlan(this.paths.dataRoot, { ...plan, faults: { ...plan.faults, [id]: settings } });
      return 'live';
    }
    const answer = await controlCall(this.paths, id, 'setFaults', settings);
    if (answer !== undefined) return 'live';
    mkdirSync(serverDir(this.paths, id), { recursive: true });
    saveFaults(serverDir(this.paths, id), settings);
    return 'saved';
  }

  private async currentFaults(id: number): Promise<FaultSettings> {
    const plan = this.netns;
    if (plan) return plan.faults[id] ?? noFaultSettings;
    const st = await this.status(id, false);
    return st ? st.faults : loadFaults(serverDir(this.paths, id), this.config.servers.length);
  }

  private async launch(server: ServerAddress): Promise<void> {
    const file = daemonLogFile(this.paths, server.id);
    const offset = existsSync(file) ? statSync(file).size : 0;
    const plan = this.netns;
    if (plan) launchDaemon(this.paths, server, [...this.daemonArgs, '--control-host', server.host], inNamespace(plan, server.id));
    else launchDaemon(this.paths, server, this.daemonArgs);
    await this.waitStarted(server, offset);
  }

  /** Wait until a freshly launched daemon answers on its client port, or fail with its last log lines. */
  private async waitStarted(server: ServerAddress, logOffset: number, timeoutMs = 15_000): Promise<void> {
    const file = daemonLogFile(this.paths, server.id);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await answers(server)) return;
      if (this.pid(server.id) === undefined || Date.now() > deadline) {
        const text = existsSync(file) ? readFileSync(file, 'utf8').slice(logOffset) : '';
        const tail = text.trim().split('\n').slice(-5).join('\n');
        throw new ChorusError('INVALID_ARGUMENT', `server ${server.id} did not start (see ${file}):\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Whether the server answers on its client port. */
async function answers(server: ServerAddress): Promise<boolean> {
  try {
    const connection = await ChorusConnection.connect(`${server.host}:${server.clientPort}`, 1000);
    try {
      await connection.call('view');
      return true;
    } finally {
      connection.close();
    }
  } catch {
    return false;
  }
}
