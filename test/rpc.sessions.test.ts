/**
 * Session order across servers: a client carries the highest timestamp it
 * has seen (`after`), and a server orders the client's next operation after
 * it, so a user who moves to a server that has not heard of their earlier
 * messages still has their messages in the order they sent them.
 */
import { expect } from 'chai';
import { ChatClient } from '../src/client/terminal.js';
import { defaultRpcLimits, RpcErrors } from '../src/rpc/protocol.js';
import { chatClusterPerTest, fastTimers } from './support/inProcessCluster.js';
import { waitUntil } from './support/processCluster.js';

describe('session order across servers (causal token)', function () {
  this.timeout(60_000);
  const chat = chatClusterPerTest();
  const raw = chat.raw;

  it('a user who reconnects to a server partitioned away from the first and appends has their messages in the order sent; without the token they would not', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    // Ann's program keeps the highest timestamp it has seen (the number before the dot of an id) and sends it as after.
    let seen = 0;
    const note = (id: string) => (seen = Math.max(seen, Number(id.split('.')[0])));
    const ann = await raw(1);
    await ann.call('user', { name: 'ann' });
    await ann.call('join', { group: 'order' });
    const bob = await raw(1);
    await bob.call('user', { name: 'bob' });
    await bob.call('join', { group: 'order' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the joins everywhere');
    // Server 3 is cut off; the other side's clocks run far ahead of its own.
    cluster.partition([[1, 2], [3]]);
    for (let i = 0; i < 30; i++) await bob.call('append', { text: `busy ${i}` });
    note((await ann.call('append', { text: 'ann first', after: seen })).id);
    const bobFirst = await bob.call('append', { text: 'bob first' });

    // Both move to server 3, which has heard of none of it. Bob first, sending no token: server 3's
    // clock is behind, so his second message is timestamped before his first. (Ann's token then moves
    // server 3's clock on for everyone.)
    const bobThere = await raw(3);
    await bobThere.call('user', { name: 'bob' });
    await bobThere.call('join', { group: 'order' });
    const bobSecond = await bobThere.call('append', { text: 'bob second' });
    expect(Number(bobSecond.id.split('.')[0])).to.be.below(Number(bobFirst.id.split('.')[0]));
    const annThere = await raw(3);
    await annThere.call('user', { name: 'ann' });
    await annThere.call('join', { group: 'order', after: seen });
    await annThere.call('append', { text: 'ann second', after: seen });

    cluster.heal();
    await cluster.waitFor(() => cluster.converged(), 20_000, 'one order after the heal');
    const texts = (await bobThere.call('history', { from: 1 })).messages.map((m) => m.text);
    expect(texts.indexOf('ann first')).to.be.below(texts.indexOf('ann second'));
    expect(texts.indexOf('bob second'), 'what the token prevents').to.be.below(texts.indexOf('bob first'));
  });

  it('the terminal client sends the token: after moving to a server partitioned away, its messages stay in the order sent', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const lines: string[] = [];
    const ann = new ChatClient(cluster.config, { print: (text) => lines.push(...text.split('\n')) });
    try {
      await ann.execute('c 1');
      await ann.execute('u ann');
      await ann.execute('j order');
      const busy = await raw(1);
      await busy.call('user', { name: 'busy' });
      await busy.call('join', { group: 'order' });
      await cluster.waitFor(() => cluster.converged(), 20_000, 'the joins everywhere');
      cluster.partition([[1, 2], [3]]);
      for (let i = 0; i < 30; i++) await busy.call('append', { text: `busy ${i}` });
      await ann.execute('a ann first');
      await ann.execute('c 3');
      await ann.execute('a ann second');
      expect(lines.filter((l) => l.startsWith('error'))).to.deep.equal([]);
      cluster.heal();
      await cluster.waitFor(() => cluster.converged(), 20_000, 'one order after the heal');
      const texts = (await busy.call('history', { from: 1 })).messages.map((m) => m.text);
      expect(texts.indexOf('ann first')).to.be.below(texts.indexOf('ann second'));
    } finally {
      ann.close();
    }
  });

  it('answers tentative at once, or with wait "stable" the final outcome: a like that lost the race to the same like on the other side of a partition names the rule', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const ann = await raw(1);
    await ann.call('user', { name: 'ann' });
    await ann.call('join', { group: 'race' });
    const first = await ann.call('append', { text: 'like me' });
    expect(first.tentative).to.equal(true);
    expect(await ann.call('append', { text: 'and wait', wait: 'stable' })).to.deep.include({ tentative: false, outcome: 'applied' });
    const bobLeft = await raw(2);
    const bobRight = await raw(3);
    for (const bob of [bobLeft, bobRight]) {
      await bob.call('user', { name: 'bob' });
      await bob.call('join', { group: 'race' });
    }
    await cluster.waitFor(() => cluster.converged(), 20_000, 'everything stable everywhere');
    // Each side accepts bob's like (neither has seen the other's); in the final order one comes second.
    cluster.partition([[1, 2], [3]]);
    const likes = [bobLeft.call('like', { id: first.id, wait: 'stable' }), bobRight.call('like', { id: first.id, wait: 'stable' })];
    await new Promise((r) => setTimeout(r, 300));
    cluster.heal();
    const outcomes = (await Promise.all(likes)).map(({ outcome, rule, tentative }) => ({ outcome, rule, tentative }));
    expect(outcomes).to.have.deep.members([
      { outcome: 'applied', rule: undefined, tentative: false },
      { outcome: 'refused', rule: 'already-liked', tentative: false },
    ]);
    const history = await ann.call('history', { from: 1, count: 1 });
    expect(history.messages[0].likedBy).to.deep.equal(['bob']);
  });

  it('request ids: appends resent with the same ids on another server after a crash are each in every history exactly once', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const first = await raw(1);
    await first.call('user', { name: 'rita' });
    await first.call('join', { group: 'once' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the join everywhere');
    // Server 1's appends reach no other server before it crashes: the hardest case for a retry elsewhere.
    cluster.partition([[1], [2, 3]]);
    const count = 100;
    const texts = Array.from({ length: count }, (_, i) => `exactly once ${i}`);
    const answers = await Promise.allSettled(texts.map((text, i) => first.call('append', { text, requestId: `req-${i}` })));
    expect(answers.filter((a) => a.status === 'fulfilled').length).to.be.greaterThan(0);
    await cluster.crash(1);

    // The client resends every one, with the same ids, to server 2 (which has none of them).
    const second = await raw(2);
    await second.call('user', { name: 'rita' });
    await second.call('join', { group: 'once' });
    // The first ten wait for their stable outcome: answered only after the heal, with the id of whichever copy took effect.
    const waited = texts.slice(0, 10).map((text, i) => second.call('append', { text, requestId: `req-${i}`, wait: 'stable' }));
    const retries = await Promise.all(texts.slice(10).map((text, i) => second.call('append', { text, requestId: `req-${i + 10}` })));
    expect(retries.every((r) => r.repeated === undefined)).to.equal(true);
    // Server 1 comes back with its copies; both copies of each are in the order, one takes effect.
    cluster.heal();
    await cluster.start(1);
    await cluster.waitFor(() => cluster.converged(), 20_000, 'every server agreeing');
    const idOf = new Map<string, string>();
    for (const id of [1, 2, 3]) {
      const reader = await raw(id);
      const page = await reader.call('history', { group: 'once', from: 1, count: 500 });
      expect(page.messages.map((m) => m.text).sort(), `server ${id}`).to.deep.equal([...texts].sort());
      for (const m of page.messages) idOf.set(m.text, m.id);
    }
    for (const [i, answer] of (await Promise.all(waited)).entries()) {
      expect(answer).to.include({ tentative: false, outcome: 'applied', id: idOf.get(texts[i]) });
    }
    // A retry the server knows is answered with the original's id and, the original being stable, its outcome; nothing is broadcast.
    const orderBefore = cluster.daemon(2).status().seqVector;
    const again = await second.call('append', { text: texts[0], requestId: 'req-0' });
    expect(again).to.include({ repeated: true, tentative: false, outcome: 'applied' });
    expect(cluster.daemon(2).status().seqVector).to.deep.equal(orderBefore);
    expect(answers[0].status === 'fulfilled' ? [answers[0].value.id, retries[0].id] : [retries[0].id]).to.include(again.id);
  });

  it('a retry with wait "stable" is answered with the copy that took effect: sent through a server then cut off, again on the other side (a second copy), a third time with wait "stable" to a server that knows only the second', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const [one, two, three] = [await raw(1), await raw(2), await raw(3)];
    for (const c of [one, two, three]) {
      await c.call('user', { name: 'ann' });
      await c.call('join', { group: 'once' });
    }
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the joins everywhere');
    cluster.partition([[1], [2, 3]]);
    // The first send reaches server 1, alone now; its answer is lost, as far as the client knows.
    const first = await one.call('append', { text: 'exactly once', requestId: 'r-once' });
    // The other side's clocks run ahead, so the second copy, sent through server 2, is ordered after the first.
    for (let i = 0; i < 20; i++) await two.call('append', { text: `busy ${i}` });
    const second = await two.call('append', { text: 'exactly once', requestId: 'r-once' });
    expect(second.repeated, 'server 2 never heard of the first copy').to.equal(undefined);
    const ts = (id: string) => Number(id.split('.')[0]);
    expect(ts(second.id)).to.be.above(ts(first.id));
    await waitUntil(async () => (await three.call('history', {})).messages.some((m) => m.id === second.id), 5_000, 'server 3 holding the second copy');
    // Server 3 knows only the second copy, which will not take effect: the answer waits until the first copy is final.
    const third = three.answer('append', { text: 'exactly once', requestId: 'r-once', wait: 'stable' });
    await new Promise((r) => setTimeout(r, 300));
    cluster.heal();
    const { result } = await third;
    expect(result).to.deep.include({ id: first.id, tentative: false, repeated: true, outcome: 'applied' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'one order after the heal');
    const texts = (await three.call('history', {})).messages.filter((m) => m.text === 'exactly once');
    expect(texts.map((m) => m.id)).to.deep.equal([first.id]);
  });

  it('a stream request is remembered until the client says it holds the answer: with 5,000 requests of the stream between two copies of one, it takes effect once', async function () {
    this.timeout(120_000);
    const cluster = await chat.create(3, { timers: fastTimers, rpcLimits: { ...defaultRpcLimits, requestsPerSecond: 100_000 } });
    const [one, two] = [await raw(1), await raw(2)];
    for (const c of [one, two]) {
      await c.call('user', { name: 'ann' });
      await c.call('join', { group: 'flight' });
    }
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the joins everywhere');
    cluster.partition([[1], [2, 3]]);
    // The first request of the stream reaches server 1, alone now; its answer is lost, as far as the client knows.
    const first = await one.call('append', { text: 'the first request', requestId: 'flight:1' });
    // 5,000 more go through server 2 and are answered; the client holds every answer but the first's, so doneBelow stays 1.
    for (let n = 2; n <= 5001; n += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, k) => two.call('append', { text: `request ${n + k}`, requestId: `flight:${n + k}`, doneBelow: 1 })));
    }
    // The first is sent again through server 2, which never heard of it: a second copy, ordered after all of them.
    const second = await two.call('append', { text: 'the first request', requestId: 'flight:1', doneBelow: 1 });
    expect(second.repeated, 'server 2 never heard of the first copy').to.equal(undefined);
    cluster.heal();
    await cluster.waitFor(() => cluster.converged(), 60_000, 'one order after the heal');
    const firsts: string[] = [];
    for (let from = 1; ; from += 500) {
      const page = await two.call('history', { from });
      firsts.push(...page.messages.filter((m) => m.text === 'the first request').map((m) => m.id));
      if (from + 500 > page.total) break;
    }
    expect(firsts).to.deep.equal([first.id]);
  });

  it('a user\'s open stream requests are bounded: past the bound one is refused until the client acknowledges answers (doneBelow); an acknowledged request is never applied again', async () => {
    const cluster = await chat.create(3, { timers: fastTimers, rpcLimits: { ...defaultRpcLimits, maxOpenRequestsPerUser: 20 } });
    const client = await raw(1);
    await client.call('user', { name: 'bo' });
    await client.call('join', { group: 'bounded' });
    for (let n = 1; n <= 20; n++) await client.call('append', { text: `m${n}`, requestId: `b:${n}` });
    const refused = await client.answer('append', { text: 'm21', requestId: 'b:21' });
    expect(refused.error).to.deep.include({ code: RpcErrors.tooManyOpenRequests });
    expect(refused.error!.data).to.deep.equal({ rule: 'too-many-open-requests' });
    // Acknowledging the first 20 answers with the same request lets it through; they are forgotten everywhere.
    expect((await client.answer('append', { text: 'm21', requestId: 'b:21', doneBelow: 21 })).result).to.have.property('id');
    const again = await client.answer('append', { text: 'm5 again', requestId: 'b:5' });
    expect(again.error).to.deep.include({ code: RpcErrors.requestDone });
    expect((await client.answer('append', { text: 'x', requestId: 'plain-id', doneBelow: 3 })).error).to.deep.include({ code: RpcErrors.invalidParams });
    expect((await client.answer('append', { text: 'x', doneBelow: 3 })).error).to.deep.include({ code: RpcErrors.invalidParams });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'stable everywhere');
    expect((await client.call('history', {})).messages.map((m) => m.text)).to.deep.equal(Array.from({ length: 21 }, (_, i) => `m${i + 1}`));
  });

  it('the terminal client resends, with the same request id, what a lost server never answered; it is applied once', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const lines: string[] = [];
    const client = new ChatClient(cluster.config, { print: (text) => lines.push(...text.split('\n')) });
    try {
      await client.execute('c 1');
      await client.execute('u sam');
      await client.execute('j resend');
      // The server goes away with the append in flight.
      const pending = client.execute('a sent into the crash');
      await cluster.crash(1);
      await pending;
      expect(lines.at(-1)).to.match(/^error: the connection was lost before the server answered; c <id> resends it/);
      await client.execute('c 2');
      expect(lines.some((l) => /^resent "sent into the crash" \(request [0-9a-f]{16}:\d+\)$/.test(l))).to.equal(true);
      await cluster.start(1);
      await cluster.waitFor(() => cluster.converged(), 20_000, 'every server agreeing');
      const reader = await raw(3);
      const page = await reader.call('history', { group: 'resend' });
      expect(page.messages.map((m) => m.text)).to.deep.equal(['sent into the crash']);
    } finally {
      client.close();
    }
  });

  it('read-your-writes: a history read with after waits for the server to hold everything up to it, and says whether it does', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const writer = await raw(1);
    await writer.call('user', { name: 'wes' });
    await writer.call('join', { group: 'ryw' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the join everywhere');
    cluster.partition([[1, 2], [3]]);
    const { id } = await writer.call('append', { text: 'my write' });
    const after = Number(id.split('.')[0]);
    const lagging = await raw(3);
    const missing = await lagging.call('history', { group: 'ryw', after });
    expect(missing.complete).to.equal(false);
    expect(missing.messages.map((m) => m.text)).to.deep.equal([]);
    cluster.heal();
    const found = await lagging.call('history', { group: 'ryw', after });
    expect(found.complete).to.equal(true);
    expect(found.messages.map((m) => m.text)).to.deep.equal(['my write']);
    expect((await lagging.call('history', { group: 'ryw' })).complete).to.equal(undefined);
  });

  it('a leave and a join sent together, without waiting for the first answer, leave the session in the group joined: its appends land there and it gets that group\'s pushes', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const ann = await raw(1);
    await ann.call('user', { name: 'ann' });
    await ann.call('join', { group: 'first' });
    await Promise.all([ann.call('leave'), ann.call('join', { group: 'second' })]);
    const bob = await raw(2);
    await bob.call('user', { name: 'bob' });
    await bob.call('join', { group: 'second' });
    await bob.call('append', { text: 'hello ann' });
    await waitUntil(() => ann.pushes.some((p) => JSON.stringify(p.params).includes('hello ann')), 10_000, 'a push of the group joined, with bob\'s message');
    await ann.call('append', { text: 'ann is here' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the appends everywhere');
    const texts = (await bob.call('history', { from: 1 })).messages.map((m) => m.text);
    expect(texts).to.deep.equal(['hello ann', 'ann is here']);
  });

  it('refuses a token further ahead than any clock could be', async () => {
    await chat.create(3, { timers: fastTimers });
    const c = await raw(1);
    await c.call('user', { name: 'eve' });
    const error = await c.call('join', { group: 'g', after: 1e12 }).then(
      () => undefined,
      (err: { code: number; message: string }) => err,
    );
    expect(error?.code).to.equal(RpcErrors.invalidParams);
    expect(error?.message).to.match(/^invalid after: 1000000000000 is more than 1000000000 ahead of this server's clock/);
  });
});
