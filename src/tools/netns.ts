/**
 * The namespaced cluster (`tools/cluster start --netns`): one network
 * namespace per server, each with its own address on a bridge, the way
 * separate hosts on one LAN would be; faults are nftables rules inside the
 * namespaces, so the daemons' own fault filter is not involved.
 *
 * Everything created is named from the data root (a short hash), recorded
 * in <data-root>/netns.json before it is created, and removed by `stop`,
 * also after a crash of the tool halfway through a start.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ChorusError } from '../errors.js';
import type { FaultSettings } from '../transport/faults.js';
import { noFaultSettings } from '../transport/faults.js';

export interface NetnsServer {
  readonly id: number;
  /** The namespace the daemon runs in. */
  readonly namespace: string;
  /** The host end of its veth pair (the other end is eth0 inside). */
  readonly veth: string;
  readonly address: string;
}

export interface NetnsPlan {
  /** Starts every name this cluster creates: namespaces, links. */
  readonly prefix: string;
  readonly bridge: string;
  /** The host's address on the bridge: clients and tools reach the servers through it. */
  readonly hostAddress: string;
  readonly prefixLength: 24;
  readonly servers: readonly NetnsServer[];
  /** The kernel faults in force per server id (empty when none). */
  readonly faults: Readonly<Record<string, FaultSettings>>;
}

export const netnsFileName = 'netns.json';
/** The nftables table each namespace gets; its rules are the faults. */
export const nftTable = 'chorus';

/** The plan for a cluster of `count` servers kept in dataRoot: names and a 10.x.y.0/24 subnet derived from its path. */
export function netnsPlan(dataRoot: string, count: number): NetnsPlan {
  const hash = createHash('sha256').update(resolve(dataRoot)).digest();
  const tag = hash.subarray(0, 2).toString('hex');
  const subnet = `10.${200 + (hash[2] % 50)}.${hash[3]}`;
  const prefix = `chr${tag}`;
  const servers = Array.from({ length: count }, (_, i) => ({ id: i + 1, namespace: `${prefix}-s${i + 1}`, veth: `${prefix}v${i + 1}`, address: `${subnet}.${11 + i}` }));
  return { prefix, bridge: `${prefix}br`, hostAddress: `${subnet}.1`, prefixLength: 24, servers, faults: {} };
}

export function loadNetnsPlan(dataRoot: string): NetnsPlan | undefined {
  const file = join(dataRoot, netnsFileName);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as NetnsPlan;
  } catch (err) {
    throw new ChorusError('CONFIG_INVALID', `${file}: not a namespaced-cluster record (${(err as Error).message}); remove it after removing the namespaces by hand (ip netns list)`);
  }
}

export function saveNetnsPlan(dataRoot: string, plan: NetnsPlan): void {
  writeFileSync(join(dataRoot, netnsFileName), `${JSON.stringify(plan, null, 2)}\n`);
}

export function forgetNetnsPlan(dataRoot: string): void {
  rmSync(join(dataRoot, netnsFileName), { force: true });
}

/** Why a namespaced cluster cannot run here, or undefined. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'namespaces, veth links and nftables rules need root (run as root, or use the loopback cluster)';
  for (const tool of ['ip', 'nft']) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      return `the ${tool} command is missing (apt-get install ${tool === 'ip' ? 'iproute2' : 'nftables'})`;
    }
  }
  return undefined;
}

function run(command: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new ChorusError('NETWORK_FAILED', `${command} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Run a command, ignoring "does not exist" (removal is idempotent). */
function tryRun(command: string, args: readonly string[]): void {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}

/** The namespaces and links of ours that exist now (what stop must leave empty). */
export function existingResources(prefix: string): { namespaces: string[]; links: string[] } {
  const namespaces = run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(prefix));
  const links = run('ip', ['-o', 'link', 'show'])
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
    .filter((n) => n.startsWith(prefix));
  return { namespaces, links };
}

/** Create the bridge, the namespaces and their links, and an empty rule table in each (what is already there is left as it is). */
export function createNamespaces(plan: NetnsPlan): void {
  const existing = existingResources(plan.prefix);
  if (!existing.links.includes(plan.bridge)) {
    run('ip', ['link', 'add', plan.bridge, 'type', 'bridge']);
    run('ip', ['addr', 'add', `${plan.hostAddress}/${plan.prefixLength}`, 'dev', plan.bridge]);
  }
  run('ip', ['link', 'set', plan.bridge, 'up']);
  for (const s of plan.servers) {
    if (existing.namespaces.includes(s.namespace)) continue;
    run('ip', ['netns', 'add', s.namespace]);
    tryRun('ip', ['link', 'del', s.veth]);
    run('ip', ['link', 'add', s.veth, 'type', 'veth', 'peer', 'name', `${s.veth}p`]);
    run('ip', ['link', 'set', `${s.veth}p`, 'netns', s.namespace]);
    run('ip', ['-n', s.namespace, 'link', 'set', `${s.veth}p`, 'name', 'eth0']);
    run('ip', ['-n', s.namespace, 'addr', 'add', `${s.address}/${plan.prefixLength}`, 'dev', 'eth0']);
    run('ip', ['-n', s.namespace, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', s.namespace, 'link', 'set', 'lo', 'up']);
    run('ip', ['link', 'set', s.veth, 'master', plan.bridge]);
    run('ip', ['link', 'set', s.veth, 'up']);
    setKernelFaults(plan, s.id, noFaultSettings);
  }
}

/** Remove every namespace and link of ours (their rules go with the namespaces); true if something was removed. */
export function removeNamespaces(prefix: string): boolean {
  const { namespaces, links } = existingResources(prefix);
  for (const ns of namespaces) tryRun('ip', ['netns', 'del', ns]);
  for (const link of existingResources(prefix).links) tryRun('ip', ['link', 'del', link]);
  return namespaces.length + links.length > 0;
}

/** The command prefix that runs a daemon inside server id's namespace. */
export function inNamespace(plan: NetnsPlan, id: number): string[] {
  return ['ip', 'netns', 'exec', serverOf(plan, id).namespace];
}

function serverOf(plan: NetnsPlan, id: number): NetnsServer {
  const server = plan.servers.find((s) => s.id === id);
  if (!server) throw new ChorusError('INVALID_ARGUMENT', `server ${id} is not in the namespaced cluster (servers 1-${plan.servers.length})`);
  return server;
}

/**
 * Server id's faults as an nftables table for its namespace: datagrams to
 * and from a blocked server dropped, and a share of those to (output) or
 * from (input) a lossy peer dropped at random (`numgen random`; netem is not
 * available on these kernels). Replaces the table atomically.
 */
export function kernelRuleset(plan: NetnsPlan, id: number, settings: FaultSettings): string {
  const address = (peer: number | string) => serverOf(plan, Number(peer)).address;
  const output: string[] = [];
  const input: string[] = [];
  for (const peer of settings.blocked) {
    output.push(`ip daddr ${address(peer)} counter drop comment "partition: cut from server ${peer}"`);
    input.push(`ip saddr ${address(peer)} counter drop comment "partition: cut from server ${peer}"`);
  }
  for (const [peer, p] of Object.entries(settings.lossTo)) output.push(`ip daddr ${address(peer)} numgen random mod 1000 < ${Math.round(p * 1000)} counter drop comment "loss ${percent(p)} to server ${peer}"`);
  for (const [peer, p] of Object.entries(settings.lossFrom)) input.push(`ip saddr ${address(peer)} numgen random mod 1000 < ${Math.round(p * 1000)} counter drop comment "loss ${percent(p)} from server ${peer}"`);
  const chain = (name: string, rules: string[]) => [`  chain ${name} {`, `    type filter hook ${name} priority 0; policy accept;`, ...rules.map((r) => `    ${r}`), '  }'];
  return [`table inet ${nftTable}`, `delete table inet ${nftTable}`, `table inet ${nftTable} {`, ...chain('output', output), ...chain('input', input), '}', ''].join('\n');
}

function percent(p: number): string {
  return `${Math.round(p * 1000) / 10}%`;
}

/** Put server id's faults in force in its namespace. */
export function setKernelFaults(plan: NetnsPlan, id: number, settings: FaultSettings): void {
  run('ip', ['netns', 'exec', serverOf(plan, id).namespace, 'nft', '-f', '-'], kernelRuleset(plan, id, settings));
}

/** The drop rules in force in server id's namespace, as nft lists them (with their packet counters). */
export function kernelRules(plan: NetnsPlan, id: number): string[] {
  const text = run('ip', ['netns', 'exec', serverOf(plan, id).namespace, 'nft', 'list', 'table', 'inet', nftTable]);
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.includes(' drop'));
}
