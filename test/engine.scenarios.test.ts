/**
 * The broadcast engine as a specification: five real nodes (engine, executor,
 * log files on simulated disks) on a seeded in-memory network, in simulated time.
 */
import { expect } from 'chai';
import type { Message } from '../src/broadcast/types.js';
import { SimCluster } from '../src/sim/cluster.js';

const ids = (messages: readonly Message[]) => messages.map((m) => `${m.sender}:${m.seq}`);

function fullOrder(cluster: SimCluster, id: number): string[] {
  const server = cluster.server(id);
  return ids([...server.stable, ...(server.node?.protocol.tentative() ?? [])]);
}

/** Broadcast `count` messages round-robin from `senders`, one every `gapMs` of simulated time. */
async function traffic(cluster: SimCluster, senders: number[], count: number, gapMs: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const sender = senders[i % senders.length];
    expect(cluster.broadcast(sender, `m${i} from ${sender}`)).to.equal(true);
    await cluster.runUntil(cluster.now + gapMs);
  }
}

describe('broadcast engine: five engines on an in-memory network', () => {
  it('with 30% loss, duplication and reordering, 1,000 messages from all five are delivered in one identical order, none lost or twice, then collected to empty', async function () {
    this.timeout(120_000);
    const cluster = new SimCluster({
      serverCount: 5,
      seed: 20261121,
      faults: { loss: 0.3, duplicate: 0.2, minDelayMs: 0.2, jitterMs: 5 },
    });
    await traffic(cluster, [1, 2, 3, 4, 5], 1000, 0.5);
    await cluster.runUntilTrue(() => cluster.quiescent(), 60_000, 'all messages stable and collected');
    const reference = ids(cluster.server(1).stable);
    expect(reference).to.have.length(1000);
    expect(new Set(reference).size).to.equal(1000);
    for (let s = 1; s <= 5; s++) {
      for (let seq = 1; seq <= 200; seq++) expect(reference).to.include(`${s}:${seq}`);
    }
    for (const server of cluster.servers) {
      const p = server.node!.protocol;
      expect(ids(server.stable), `server ${server.id}`).to.deep.equal(reference);
      expect(p.storeCount, `store of ${server.id}`).to.equal(0);
      expect(p.unstableCount, `log of ${server.id}`).to.equal(0);
      expect(p.bufferedCount, `buffer of ${server.id}`).to.equal(0);
    }
    // The order really is (ts, sender).
    const stable = cluster.server(3).stable;
    for (let i = 1; i < stable.length; i++) {
      const a = stable[i - 1];
      const b = stable[i];
      expect(a.ts < b.ts || (a.ts === b.ts && a.sender < b.sender), `order at ${i}`).to.equal(true);
    }
  });

  it('partition {1,2} | {3,4,5}: both sides keep ordering their own messages; after the heal all agree without new traffic', async function () {
    this.timeout(60_000);
    const cluster = new SimCluster({ serverCount: 5, seed: 7, faults: { loss: 0.05, duplicate: 0.05, minDelayMs: 0.2, jitterMs: 2 } });
    await traffic(cluster, [1, 2, 3, 4, 5], 50, 1);
    await cluster.runUntilTrue(() => cluster.quiescent(), 10_000, 'warm-up converges');
    cluster.network.partition([[1, 2], [3, 4, 5]], 5);
    await cluster.runUntil(cluster.now + 2000);
    expect(cluster.server(1).node!.protocol.view).to.deep.equal([1, 2]);
    expect(cluster.server(4).node!.protocol.view).to.deep.equal([3, 4, 5]);
    await traffic(cluster, [1, 2], 40, 2);
    await traffic(cluster, [3, 4, 5], 60, 2);
    await cluster.runUntil(cluster.now + 500);
    // Each side holds its own side's messages, in (ts, sender) order, identically.
    const left = fullOrder(cluster, 1);
    expect(fullOrder(cluster, 2)).to.deep.equal(left);
    expect(left).to.have.length(50 + 40);
    const right = fullOrder(cluster, 3);
    expect(fullOrder(cluster, 4)).to.deep.equal(right);
    expect(fullOrder(cluster, 5)).to.deep.equal(right);
    expect(right).to.have.length(50 + 60);
    for (const id of [1, 3]) {
      const tentative = cluster.server(id).node!.protocol.tentative();
      for (let i = 1; i < tentative.length; i++) expect(tentative[i - 1].ts <= tentative[i].ts).to.equal(true);
    }
    cluster.network.heal();
    await cluster.runUntilTrue(() => cluster.quiescent(), 10_000, 'heal converges');
    const merged = fullOrder(cluster, 1);
    expect(merged).to.have.length(150);
    for (let id = 2; id <= 5; id++) expect(fullOrder(cluster, id), `server ${id}`).to.deep.equal(merged);
    expect(cluster.server(5).node!.protocol.view).to.deep.equal([1, 2, 3, 4, 5]);
  });

  it('the originator is gone: messages that reached only server 2 still reach server 3 after server 1 crashes', async function () {
    const cluster = new SimCluster({ serverCount: 5, seed: 11 });
    await cluster.runUntil(500);
    for (const to of [3, 4, 5]) cluster.network.cutOneWay(1, to);
    await traffic(cluster, [1], 10, 1);
    await cluster.runUntil(cluster.now + 20);
    expect(cluster.server(2).node!.protocol.seqVector[0]).to.equal(10);
    cluster.crash(1);
    await cluster.runUntilTrue(
      () => [3, 4, 5].every((id) => cluster.server(id).node!.protocol.seqVector[0] === 10),
      5_000,
      'servers 3-5 get server 1 messages from server 2',
    );
    const held = ids([...cluster.server(3).stable, ...cluster.server(3).node!.protocol.tentative()]).filter((id) => id.startsWith('1:'));
    expect(held).to.deep.equal(Array.from({ length: 10 }, (_, i) => `1:${i + 1}`));
  });

  it('crash and restart from the journal: the server catches up and never reuses a sequence number or timestamp', async function () {
    this.timeout(60_000);
    const cluster = new SimCluster({ serverCount: 5, seed: 99, faults: { loss: 0.1, duplicate: 0.05, minDelayMs: 0.2, jitterMs: 2 } });
    await traffic(cluster, [1, 2, 3, 4, 5], 100, 1);
    cluster.crash(3);
    await traffic(cluster, [1, 2, 4, 5], 100, 1);
    await cluster.runUntil(cluster.now + 100);
    cluster.restart(3);
    const recoveredSeq = cluster.server(3).node!.protocol.seqVector[2];
    expect(recoveredSeq).to.be.at.least(cluster.server(3).confirmed.length);
    await traffic(cluster, [3], 20, 1);
    await cluster.runUntilTrue(() => cluster.quiescent(), 20_000, 'restarted server catches up');
    const reference = fullOrder(cluster, 1);
    expect(reference).to.have.length(220);
    expect(fullOrder(cluster, 3)).to.deep.equal(reference);
    const own = cluster.server(3).confirmed.map((m) => m.seq);
    expect(new Set(own).size).to.equal(own.length);
    expect(own.at(-1)).to.equal(recoveredSeq + 20);
    const timestamps = cluster.server(3).confirmed.map((m) => m.ts);
    for (let i = 1; i < timestamps.length; i++) expect(timestamps[i]).to.be.greaterThan(timestamps[i - 1]);
  });
});
