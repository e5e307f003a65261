/**
 * The console's picture and timeline, from statuses made up for each case:
 * links in each direction, the sides of a partition, one-way cuts, digests,
 * and the events and samples the timeline draws from them.
 */
import { expect } from 'chai';
import type { ServerAddress } from '../src/config/clusterConfig.js';
import type { ClusterPicture } from '../src/console/api.js';
import { clusterPicture } from '../src/console/picture.js';
import { ConsoleTimeline, maxEvents } from '../src/console/timeline.js';
import type { ClusterServerStatus } from '../src/tools/localCluster.js';
import { dropReasons } from '../src/transport/udpTransport.js';
import { noFaultSettings, type FaultSettings } from '../src/transport/faults.js';

const servers: ServerAddress[] = [1, 2, 3, 4, 5].map((id) => ({ id, host: '127.0.0.1', udpPort: 7100 + id, clientPort: 7200 + id }));

function status(id: number, over: { faults?: Partial<FaultSettings>; digest?: string; view?: number[]; ordered?: number; tentative?: number; dropped?: Partial<Record<string, number>> } = {}): ClusterServerStatus {
  const dropped = Object.fromEntries(dropReasons.map((r) => [r, over.dropped?.[r] ?? 0]));
  return {
    id,
    pid: 1000 + id,
    view: over.view ?? [1, 2, 3, 4, 5],
    seqVector: [over.ordered ?? 0, 0, 0, 0, 0],
    clock: 7,
    stableTs: 5,
    unstable: over.tentative ?? 0,
    retained: 0,
    digest: over.digest ?? '3:aaaa',
    transport: { dropped },
    faults: { ...noFaultSettings, ...over.faults },
  } as unknown as ClusterServerStatus;
}

const directions = (p: ClusterPicture, state: string) => p.links.flatMap((l) => [l.aToB, l.bToA]).filter((d) => d.state === state).length;

describe('console picture', () => {
  it('a healthy cluster: 20 directions up, one side, one digest', () => {
    const p = clusterPicture(servers, servers.map((s) => status(s.id)), 0);
    expect(directions(p, 'up')).to.equal(20);
    expect(p.sides).to.deep.equal([[1, 2, 3, 4, 5]]);
    expect(p.converged).to.equal(true);
    expect(p.oneWayCuts).to.deep.equal([]);
  });

  it('partition {1,2} | {3,4,5}: the 12 directions between the sides are cut, two sides, two digests', () => {
    const blocked = (id: number) => (id <= 2 ? [3, 4, 5] : [1, 2]);
    const p = clusterPicture(servers, servers.map((s) => status(s.id, { faults: { blocked: blocked(s.id) }, digest: s.id <= 2 ? '4:aaaa' : '5:bbbb' })), 0);
    expect(directions(p, 'cut')).to.equal(12);
    expect(directions(p, 'up')).to.equal(8);
    expect(p.sides).to.deep.equal([[1, 2], [3, 4, 5]]);
    expect(p.digestGroups).to.deep.equal([[1, 2], [3, 4, 5]]);
    expect(p.converged).to.equal(false);
  });

  it('one server cutting itself off is enough to cut both directions of its links', () => {
    const p = clusterPicture(servers, servers.map((s) => status(s.id, { faults: { blocked: s.id === 5 ? [1, 2, 3, 4] : [] } })), 0);
    expect(p.sides).to.deep.equal([[1, 2, 3, 4], [5]]);
    expect(directions(p, 'cut')).to.equal(8);
  });

  it('one-way loss shows on its direction only, with the share dropped by either end', () => {
    const st = servers.map((s) => status(s.id, { faults: s.id === 1 ? { lossTo: { 3: 0.3 } } : s.id === 3 ? { lossFrom: { 1: 0.5 } } : {} }));
    const link = clusterPicture(servers, st, 0).links.find((l) => l.a === 1 && l.b === 3);
    expect(link?.aToB.state).to.equal('lossy');
    expect(link?.aToB.state === 'lossy' && link.aToB.loss).to.be.closeTo(1 - 0.7 * 0.5, 1e-9);
    expect(link?.bToA).to.deep.equal({ state: 'up' });
  });

  it('all datagrams dropped one way is a one-way cut (the servers stay one side: they hear each other through the others)', () => {
    const p = clusterPicture(servers, servers.map((s) => status(s.id, { faults: s.id === 1 ? { lossTo: { 3: 1 } } : {} })), 0);
    expect(p.oneWayCuts).to.deep.equal([{ from: 1, to: 3 }]);
    expect(p.sides).to.deep.equal([[1, 2, 3, 4, 5]]);
  });

  it('a server down: its card says so, its links are drawn as down, it is in no side and no digest group', () => {
    const p = clusterPicture(servers, servers.map((s) => (s.id === 4 ? undefined : status(s.id))), 0);
    expect(p.servers[3]).to.deep.equal({ id: 4, state: 'down', clientAddress: '127.0.0.1:7204' });
    expect(directions(p, 'down')).to.equal(8);
    expect(p.sides).to.deep.equal([[1, 2, 3, 5]]);
    expect(p.digestGroups).to.deep.equal([[1, 2, 3, 5]]);
  });

  it('a server whose storage failed is shown as such, with the reason, and still counts as up', () => {
    const failed = { ...status(3), storageError: 'ENOSPC: no space left on device' } as ClusterServerStatus;
    const p = clusterPicture(servers, servers.map((s) => (s.id === 3 ? failed : status(s.id))), 0);
    expect(p.servers[2]).to.include({ state: 'storage failed', storageError: 'ENOSPC: no space left on device' });
    expect(p.sides).to.deep.equal([[1, 2, 3, 4, 5]]);
  });

  it('bad datagrams are counted apart from the stale ones a healthy restart produces', () => {
    const p = clusterPicture(servers, servers.map((s) => status(s.id, { dropped: s.id === 2 ? { stale: 4, 'auth-failed': 3 } : { stale: 1 } })), 0);
    const card = p.servers[1];
    expect(card.state !== 'down' && card.badDatagrams).to.equal(3);
    expect(card.state !== 'down' && card.dropped).to.deep.equal({ stale: 4, 'auth-failed': 3 });
  });
});

describe('console timeline', () => {
  const picture = (at: number, over: (id: number) => Parameters<typeof status>[1] | 'down' = () => ({})) =>
    clusterPicture(servers, servers.map((s) => (over(s.id) === 'down' ? undefined : status(s.id, over(s.id) as Parameters<typeof status>[1]))), at);

  it('records view changes and servers going down and up', () => {
    const t = new ConsoleTimeline();
    t.observe(picture(0));
    t.observe(picture(100, (id) => (id === 3 ? 'down' : { view: [1, 2, 4, 5] })));
    t.observe(picture(200, (id) => (id === 3 ? {} : { view: [1, 2, 4, 5] })));
    const texts = t.current.events.map((e) => `${e.kind}: ${e.text}`);
    expect(texts).to.include('server: server 3 is down');
    expect(texts).to.include('view: server 1 view {1,2,3,4,5} -> {1,2,4,5}');
    expect(texts).to.include('server: server 3 is up (pid 1003)');
  });

  it('measures the time from a heal to one digest', () => {
    const t = new ConsoleTimeline();
    t.observe(picture(0, (id) => ({ digest: id <= 2 ? '4:a' : '5:b' })));
    t.healed(1000);
    t.observe(picture(1200, (id) => ({ digest: id <= 2 ? '4:a' : '5:b' })));
    expect(t.current.events).to.deep.equal([]);
    t.observe(picture(1850, () => ({ digest: '9:c' })));
    expect(t.current.events.map((e) => e.text)).to.deep.equal(['one digest at servers {1,2,3,4,5}, 0.85 s after the heal']);
  });

  it('samples throughput from the seq vectors once a second, and nothing for a server down', () => {
    const t = new ConsoleTimeline();
    t.observe(picture(0, () => ({ ordered: 100 })));
    t.observe(picture(500, () => ({ ordered: 150 })));
    t.observe(picture(2000, (id) => (id === 5 ? 'down' : { ordered: 400, tentative: 2 })));
    expect(t.current.samples).to.have.length(1);
    expect(t.current.samples[0].throughput).to.deep.equal([150, 150, 150, 150, null]);
    expect(t.current.samples[0].tentative).to.deep.equal([2, 2, 2, 2, null]);
  });

  it('keeps the last events only', () => {
    const t = new ConsoleTimeline();
    for (let i = 0; i < maxEvents + 10; i++) t.record(i, 'fault', `fault ${i}`);
    expect(t.current.events).to.have.length(maxEvents);
    expect(t.current.events[0].text).to.equal('fault 10');
  });
});
