/**
 * Five real daemons in this process on loopback UDP: the engine's scenarios
 * again, with real sockets, real log files and injected datagram drops.
 */
import { expect } from 'chai';
import { appendFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Message } from '../src/broadcast/types.js';
import type { ApplicationFactory } from '../src/node/application.js';
import { InProcessCluster } from './support/inProcessCluster.js';

const key = (m: Message) => `${m.sender}:${m.seq}`;

describe('daemon: five real daemons on loopback UDP', function () {
  this.timeout(60_000);
  let cluster: InProcessCluster | undefined;

  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it('with 20% injected loss on every link, 1,000 messages from all five reach every daemon in one order, then are collected', async () => {
    cluster = await InProcessCluster.create(5);
    await cluster.startAll();
    const c = cluster;
    const orders = new Map<number, string[]>();
    for (const d of c.running()) {
      orders.set(d.id, []);
      d.on('stable', (messages) => orders.get(d.id)!.push(...messages.map(key)));
    }
    await c.waitFor(() => c.running().every((d) => d.view.length === 5), 5_000, 'all five in every view');
    for (const d of c.running()) {
      const loss = Object.fromEntries([1, 2, 3, 4, 5].filter((id) => id !== d.id).map((id) => [id, 0.2]));
      d.faults.set({ blocked: [], lossTo: loss, lossFrom: {} });
    }
    const acks: Message[] = [];
    for (let round = 0; round < 20; round++) {
      acks.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => c.daemon((i % 5) + 1).submit(`message ${round}.${i}`)))));
    }
    expect(new Set(acks.map(key)).size).to.equal(1000);
    c.heal();
    await c.waitFor(() => c.converged() && [...orders.values()].every((o) => o.length === 1000), 30_000, 'convergence');
    const reference = orders.get(1)!;
    expect(new Set(reference).size).to.equal(1000);
    for (const [id, order] of orders) expect(order, `server ${id}`).to.deep.equal(reference);
    let dropped = 0;
    let nacks = 0;
    for (const d of c.running()) {
      const s = d.status();
      expect(s.retained, `server ${d.id} store`).to.equal(0);
      expect(s.unstable, `server ${d.id} log`).to.equal(0);
      dropped += d.faults.droppedOut;
      nacks += s.engine.nacksSent;
    }
    expect(dropped, 'datagrams dropped by the injected loss').to.be.greaterThan(10);
    expect(nacks, 'NACKs sent to repair the loss').to.be.greaterThan(0);
  });

  it('partition {1,2} | {3,4,5}: both sides order their own messages; after the heal all five agree without new traffic', async () => {
    cluster = await InProcessCluster.create(5);
    await cluster.startAll();
    const c = cluster;
    await c.waitFor(() => c.running().every((d) => d.view.length === 5), 5_000, 'all five in every view');
    c.partition([[1, 2], [3, 4, 5]]);
    await c.waitFor(() => c.daemon(1).view.length === 2 && c.daemon(3).view.length === 3, 5_000, 'views split');
    await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => c.daemon((i % 2) + 1).submit(`left ${i}`)),
      ...Array.from({ length: 30 }, (_, i) => c.daemon((i % 3) + 3).submit(`right ${i}`)),
    ]);
    await c.waitFor(() => c.daemon(2).tentative().length === 30 && c.daemon(5).tentative().length === 30, 5_000, 'each side holds its own');
    expect(c.daemon(2).tentative().map(key)).to.deep.equal(c.daemon(1).tentative().map(key));
    expect(c.daemon(5).tentative().map(key)).to.deep.equal(c.daemon(3).tentative().map(key));
    c.heal();
    await c.waitFor(() => c.converged() && c.daemon(1).status().digest.startsWith('60:'), 10_000, 'convergence after heal');
    expect(c.daemon(4).view).to.deep.equal([1, 2, 3, 4, 5]);
  });

  it('a crashed daemon with a torn journal tail restarts, catches up, and never reuses a sequence number or timestamp', async () => {
    cluster = await InProcessCluster.create(5);
    await cluster.startAll();
    const c = cluster;
    await c.waitFor(() => c.running().every((d) => d.view.length === 5), 5_000, 'all five in every view');
    const before = await Promise.all(Array.from({ length: 20 }, (_, i) => c.daemon(3).submit(`before ${i}`)));
    await c.crash(3);
    const journal = readdirSync(c.dataDir(3)).find((f) => f.startsWith('journal.'))!;
    appendFileSync(join(c.dataDir(3), journal), '{"t":"msg","sender":3,"seq":21,"ts":9');
    await Promise.all(Array.from({ length: 40 }, (_, i) => c.daemon([1, 2, 4, 5][i % 4]).submit(`during ${i}`)));
    const restarted = await c.start(3);
    expect(c.logLines(3).join('\n')).to.match(/warn: dropped a torn last line of .*journal\.\d+\.jsonl \(line \d+, 37 bytes\)/);
    expect(c.logLines(3).join('\n')).to.match(/info: recovered from .*: .* own seq 20/);
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => restarted.submit(`after ${i}`)));
    expect(after[0].seq).to.equal(before.at(-1)!.seq + 1);
    expect(after[0].ts).to.be.greaterThan(before.at(-1)!.ts);
    await c.waitFor(() => c.converged() && c.daemon(1).status().digest.startsWith('80:'), 10_000, 'convergence after restart');
  });

  it('a cleanly stopped daemon restarts from its snapshot with exactly the state it had', async () => {
    cluster = await InProcessCluster.create(3);
    await cluster.startAll();
    const c = cluster;
    await c.waitFor(() => c.running().every((d) => d.view.length === 3), 5_000, 'all three in every view');
    await Promise.all(Array.from({ length: 30 }, (_, i) => c.daemon((i % 3) + 1).submit(`m${i}`)));
    await c.waitFor(() => c.converged(), 10_000, 'convergence');
    const before = c.daemon(2).status();
    await c.stop(2);
    const after = (await c.start(2)).status();
    expect(after.digest).to.equal(before.digest);
    expect(after.seqVector).to.deep.equal(before.seqVector);
    expect(after.clock).to.equal(before.clock);
    expect(after.stableTs).to.equal(before.stableTs);
  });

  it('a journal grows as large as the last snapshot before the next one: snapshots cost about what the journal does, however long the history', async () => {
    // An application whose state is its whole history, as the chat's is.
    const keepAll: ApplicationFactory = (saved) => {
      const kept: string[] = Array.isArray(saved) ? [...(saved as string[])] : [];
      return { apply: (_order, stable) => stable.forEach((m) => kept.push(m.payload)), viewChanged: () => undefined, snapshot: () => [...kept], digest: () => String(kept.length) };
    };
    cluster = await InProcessCluster.create(3, { application: keepAll, snapshotJournalBytes: 2000 });
    await cluster.startAll();
    const c = cluster;
    await c.waitFor(() => c.running().every((d) => d.view.length === 3), 5_000, 'all three in every view');
    for (let round = 0; round < 60; round++) await Promise.all(Array.from({ length: 10 }, (_, i) => c.daemon((i % 3) + 1).submit(`m${round}.${i} ${'x'.repeat(100)}`)));
    await c.waitFor(() => c.converged(), 10_000, 'convergence');
    const dir = c.dataDir(1);
    const snapshot = JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8')) as { generation: number; app: string[] };
    const journalBytes = readdirSync(dir)
      .filter((name) => name.startsWith('journal.'))
      .reduce((total, name) => total + statSync(join(dir, name)).size, 0);
    expect(journalBytes, 'journal bytes written since the snapshot').to.be.at.most(Math.max(2000, statSync(join(dir, 'snapshot.json')).size) + 20_000);
    // A snapshot whenever the journal passes 2,000 bytes would be about 30 of them here; the history roughly doubles between these.
    expect(snapshot.app.length).to.be.greaterThan(0);
    expect(snapshot.generation).to.be.within(3, 15);
  });
});
