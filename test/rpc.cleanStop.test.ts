/**
 * A clean stop (SIGTERM) of a daemon with a client pipelining appends, seen
 * through a raw WebSocket that shares no code with our client: every request
 * gets an answer before the close, the close says "going away", and every
 * append answered as done is in the history the other servers hold.
 */
import { expect } from 'chai';
import { ProcessCluster, waitUntil } from './support/processCluster.js';
import { RawClient } from './support/rawClient.js';

describe('RPC: a clean stop answers every request it accepted', function () {
  this.timeout(90_000);
  let cluster: ProcessCluster | undefined;

  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it('a client pipelining appends to a daemon that gets SIGTERM gets an answer for each, then close 1001; the confirmed appends are kept', async () => {
    cluster = await ProcessCluster.create(3);
    await cluster.startAll();
    const port = (id: number) => cluster!.config.servers[id - 1].clientPort;
    const writer = await RawClient.open(`127.0.0.1:${port(1)}`);
    expect(await writer.call('user', { name: 'piper' })).to.deep.equal({ user: 'piper' });
    await writer.call('join', { group: 'pipe' });

    const sent: number[] = [];
    for (let i = 0; i < 150; i++) sent.push(writer.send('append', { text: `before ${i}` })!);
    process.kill(cluster.pids.get(1)!, 'SIGTERM');
    // Requests keep coming while the server stops, until it says so (4008): each is still answered.
    for (let i = 0; i < 300 && !writer.toldShuttingDown; i++) {
      const id = writer.send('append', { text: `during ${i}` });
      if (id === undefined) break;
      sent.push(id);
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitUntil(() => writer.closed !== undefined, 20_000, 'the server closes the connection');
    expect(writer.closed!.code).to.equal(1001);
    const unanswered = sent.filter((id) => !writer.answers.has(id));
    expect(unanswered, 'requests without an answer').to.deep.equal([]);
    const answers = sent.map((id) => writer.answers.get(id)!);
    for (const a of answers) if (a.error) expect(a.error.code, a.error.message).to.equal(4008);
    const done = answers.filter((a) => a.result !== undefined).length;
    expect(done).to.be.greaterThan(0);

    // What was answered as done is in the history the other servers hold, once server 1 is back.
    cluster.pids.delete(1);
    await cluster.start(1);
    const reader = await RawClient.open(`127.0.0.1:${port(2)}`);
    await reader.call('user', { name: 'reader' });
    await reader.call('join', { group: 'pipe' });
    await waitUntil(async () => (await reader.call('history', { from: 1, count: 500 })).total >= done, 20_000, 'the confirmed appends on server 2');
    const history = await reader.call('history', { from: 1, count: 500 });
    const ids = new Set(history.messages.map((m) => m.id));
    for (const a of answers) if (a.result) expect(ids.has(a.result.id)).to.equal(true);
    reader.close();
  });
});
