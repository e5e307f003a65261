/**
 * Clusters of the smallest and largest supported size (3 and 9 servers) as
 * real daemon processes, driven with tools/cluster: partition, writes on
 * both sides, heal, kill, relaunch; the chat converges every time.
 */
import { expect } from 'chai';
import type { ClusterServerStatus } from '../src/tools/localCluster.js';
import { ProcessCluster, waitUntil } from './support/processCluster.js';

interface Row {
  id: number;
  status: ClusterServerStatus | null;
}

for (const n of [3, 9]) {
  describe(`a cluster of ${n} daemon processes`, function () {
    this.timeout(120_000);
    let cluster: ProcessCluster;

    before(async () => {
      cluster = await ProcessCluster.create(n);
      await cluster.startAll();
    });
    after(() => cluster?.destroy());

    const converged = async (): Promise<boolean> => {
      const rows = JSON.parse(await cluster.tool('cluster', 'status', '--json')) as Row[];
      return rows.every((r) => r.status && r.status.digest === rows[0].status?.digest && r.status.unstable === 0 && r.status.view.length === n);
    };
    const ids = Array.from({ length: n }, (_, i) => i + 1);

    it(`partition {1,2} | {${ids.slice(2).join(',')}}, writes on both sides, heal: one history everywhere`, async () => {
      await waitUntil(converged, 20_000, `all ${n} in one view`);
      const left = cluster.client(1);
      const right = cluster.client(n);
      await left.run('u ann', /user: ann/);
      await left.run('j lobby', /--- lobby/);
      await right.run('u zed', /user: zed/);
      await right.run('j lobby', /--- lobby/);
      await cluster.tool('cluster', 'partition', '1,2', ids.slice(2).join(','));
      await waitUntil(async () => {
        const rows = JSON.parse(await cluster.tool('cluster', 'status', '--json')) as Row[];
        return rows.every((r) => r.status?.view.length === (r.id <= 2 ? 2 : n - 2));
      }, 20_000, 'the two sides in their own views');
      left.send('a from the left');
      right.send('a from the right');
      await left.waitFor(/ann: from the left/);
      await right.waitFor(/zed: from the right/);
      expect(left.lines.join('\n')).not.to.contain('from the right');
      await cluster.tool('cluster', 'heal');
      await waitUntil(converged, 20_000, 'one digest after the heal');
      await left.waitFor(/zed: from the right/);
      await right.waitFor(/ann: from the left/);
    });

    it('a flapping link (cut, whole, cut, whole) ends whole, and the servers agree', async () => {
      const out = await cluster.tool('cluster', 'flap', '1', String(n), '--period', '0.4', '--count', '4');
      const lines = out.trim().split('\n');
      expect(lines[0]).to.equal(`Flapping 1 <-> ${n} every 0.4 s, 4 changes.`);
      // Each change is stamped with its time, then says what the link is now.
      expect(lines.slice(1, 5).map((l) => l.split(' ').slice(1).join(' '))).to.deep.equal(['cut', 'whole', 'cut', 'whole'].map((w) => `1 <-> ${n} ${w}`));
      expect(lines[5]).to.equal(`1 <-> ${n} whole again.`);
      const rows = JSON.parse(await cluster.tool('cluster', 'status', '--json')) as Row[];
      expect(rows.map((r) => Object.keys(r.status?.faults.lossTo ?? {}).length)).to.deep.equal(ids.map(() => 0));
      await waitUntil(converged, 20_000, 'one digest after the flapping');
    });

    it('kill one server, write, relaunch it: it catches up', async () => {
      await cluster.tool('cluster', 'kill', '2');
      const writer = cluster.client(1);
      await writer.run('u bob', /user: bob/);
      await writer.run('j lobby', /--- lobby/);
      writer.send('a while 2 is down');
      await writer.waitFor(/bob: while 2 is down/);
      await cluster.tool('cluster', 'relaunch', '2');
      await waitUntil(converged, 20_000, 'server 2 caught up');
      const reader = cluster.client(2);
      await reader.run('u cat', /user: cat/);
      await reader.run('j lobby', /bob: while 2 is down/);
    });
  });
}
