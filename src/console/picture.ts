/**
 * The cluster picture from what the control endpoints report: each server's
 * card, each link in both directions, and which servers share a digest.
 * A pure function of the statuses, so that it is tested without daemons.
 */
import type { ServerAddress } from '../config/clusterConfig.js';
import type { ServerStatus } from '../daemon/controlServer.js';
import { badDatagramCount, dropReasons } from '../transport/udpTransport.js';
import type { ClusterPicture, Direction, Link, ServerCard } from './api.js';

export function clusterPicture(servers: readonly ServerAddress[], statuses: readonly (ServerStatus | undefined)[], at: number, faultsMadeBy: ClusterPicture['faultsMadeBy'] = 'daemons'): ClusterPicture {
  const cards = servers.map((s, i) => card(s, statuses[i]));
  const links: Link[] = [];
  for (let i = 0; i < servers.length; i++) {
    for (let j = i + 1; j < servers.length; j++) {
      links.push({ a: servers[i].id, b: servers[j].id, aToB: direction(statuses[i], statuses[j]), bToA: direction(statuses[j], statuses[i]) });
    }
  }
  const digestGroups = groupByDigest(statuses.filter((st): st is ServerStatus => st !== undefined));
  const up = cards.filter((c) => c.state !== 'down').map((c) => c.id);
  return { at, servers: cards, links, digestGroups, converged: digestGroups.length === 1, faultsMadeBy, sides: sidesOf(up, links), oneWayCuts: oneWayCuts(links) };
}

const passes = (d: Direction): boolean => d.state === 'up' || d.state === 'lossy';

/** Connected groups of the servers up, joined by links that pass both ways. */
export function sidesOf(up: readonly number[], links: readonly Link[]): number[][] {
  const sideOf = new Map(up.map((id) => [id, id]));
  const find = (id: number): number => {
    const parent = sideOf.get(id) ?? id;
    return parent === id ? id : find(parent);
  };
  for (const link of links) {
    if (passes(link.aToB) && passes(link.bToA)) sideOf.set(find(link.a), find(link.b));
  }
  const sides = new Map<number, number[]>();
  for (const id of up) sides.set(find(id), [...(sides.get(find(id)) ?? []), id]);
  return [...sides.values()];
}

function oneWayCuts(links: readonly Link[]): { from: number; to: number }[] {
  const cuts: { from: number; to: number }[] = [];
  for (const link of links) {
    if (link.aToB.state === 'cut' && passes(link.bToA)) cuts.push({ from: link.a, to: link.b });
    if (link.bToA.state === 'cut' && passes(link.aToB)) cuts.push({ from: link.b, to: link.a });
  }
  return cuts;
}

function card(server: ServerAddress, st: ServerStatus | undefined): ServerCard {
  const clientAddress = `${server.host}:${server.clientPort}`;
  if (!st) return { id: server.id, state: 'down', clientAddress };
  const dropped: Record<string, number> = {};
  for (const reason of dropReasons) if (st.transport.dropped[reason] > 0) dropped[reason] = st.transport.dropped[reason];
  const badDatagrams = badDatagramCount(st.transport.dropped);
  return {
    id: st.id,
    state: st.storageError === undefined ? 'up' : 'storage failed',
    pid: st.pid,
    view: st.view,
    seqVector: st.seqVector,
    clock: st.clock,
    stableTs: st.stableTs,
    tentative: st.unstable,
    retained: st.retained,
    digest: st.digest,
    dropped,
    badDatagrams,
    faults: st.faults,
    ...(st.storageError === undefined ? {} : { storageError: st.storageError }),
    clientAddress,
  };
}

/** A datagram from `from` to `to`: cut if either end blocks the other (or drops all), lossy if either end drops some. */
function direction(from: ServerStatus | undefined, to: ServerStatus | undefined): Direction {
  if (!from || !to) return { state: 'down' };
  if (from.faults.blocked.includes(to.id) || to.faults.blocked.includes(from.id)) return { state: 'cut' };
  const kept = (1 - (from.faults.lossTo[to.id] ?? 0)) * (1 - (to.faults.lossFrom[from.id] ?? 0));
  if (kept <= 0) return { state: 'cut' };
  return kept < 1 ? { state: 'lossy', loss: 1 - kept } : { state: 'up' };
}

function groupByDigest(statuses: readonly ServerStatus[]): number[][] {
  const groups = new Map<string, number[]>();
  for (const st of statuses) groups.set(st.digest, [...(groups.get(st.digest) ?? []), st.id]);
  return [...groups.values()];
}
