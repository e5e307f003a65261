/**
 * A long history, read a page at a time from the history segments: over RPC
 * (`history` with from/count), by the terminal client's `p`, and after the
 * daemons restart from their log files.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatClient } from '../src/client/terminal.js';
import { defaultRpcLimits, RpcErrors } from '../src/rpc/protocol.js';
import { streamDirName } from '../src/storage/segmentStore.js';
import { chatClusterPerTest, fastTimers } from './support/inProcessCluster.js';
import { waitUntil } from './support/processCluster.js';

describe('a long history, a page at a time', function () {
  this.timeout(120_000);
  const chat = chatClusterPerTest();
  const connect = chat.connect;

  it('history pages come from the segment files, the client prints them all and likes a message off the screen, and all of it survives a restart', async () => {
    const total = 1200;
    const cluster = await chat.create(3, { timers: fastTimers, snapshotJournalBytes: 64 * 1024, rpcLimits: { ...defaultRpcLimits, requestsPerSecond: 100_000 } });
    const writer = await connect(1);
    await writer.call('user', { name: 'ann' });
    await writer.call('join', { group: 'long' });
    for (let i = 1; i <= total; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => writer.call('append', { text: `message ${i + k}` })));
    }
    const reader = await connect(2);
    await reader.call('user', { name: 'bo' });
    await reader.call('join', { group: 'long' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'every server holding every message as stable');

    const texts = (page: { messages: readonly { n: number; text: string }[] }) => page.messages.map((m) => [m.n, m.text]);
    const first = await reader.call('history', {});
    expect(first.total).to.equal(total);
    expect(texts(first)).to.deep.equal(Array.from({ length: 500 }, (_, i) => [i + 1, `message ${i + 1}`]));
    expect(texts(await reader.call('history', { from: 1101, count: 200 }))).to.deep.equal(Array.from({ length: 100 }, (_, i) => [1101 + i, `message ${1101 + i}`]));
    expect((await reader.call('history', { from: 5000 })).messages).to.deep.equal([]);
    for (const [params, message] of [
      [{ count: 0 }, /^invalid count: must be at least 1$/],
      [{ count: 501 }, /^invalid count: at most 500 messages a page$/],
      [{ from: 0 }, /^invalid from: messages are numbered from 1$/],
      [{ from: 1.5 }, /^invalid from: must be a whole number$/],
    ] as const) {
      const error = await reader.call('history', params).then(
        () => undefined,
        (err: { code: number; message: string }) => err,
      );
      expect(error?.code, JSON.stringify(params)).to.equal(RpcErrors.invalidParams);
      expect(error?.message).to.match(message);
    }

    // The terminal client prints the whole history, page after page, and likes a message that is not on its screen.
    const output: string[] = [];
    const client = new ChatClient(cluster.config, { print: (text) => output.push(...text.split('\n')) });
    try {
      await client.execute('c 3');
      await client.execute('u cy');
      await client.execute('j long');
      output.length = 0;
      await client.execute('p');
      expect(output[0]).to.equal(`--- long | participants: ann, bo, cy | ${total} messages ---`);
      expect(output.slice(1)).to.deep.equal(Array.from({ length: total }, (_, i) => `${String(i + 1).padStart(3)}. ann: message ${i + 1}  [0 likes]`));
      await client.execute('l 1150');
      expect(output[output.length - 1]).to.equal('liked message 1150');
      await client.execute('l 1201');
      expect(output[output.length - 1]).to.equal(`error: there is no message 1201 in long (it has ${total})`);
    } finally {
      client.close();
    }
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the like stable everywhere');

    // Restarted from their log files, the servers read the same history back: server 2 stopped cleanly, the others crashed.
    chat.closeConnections();
    await cluster.stop(2);
    // A clean stop's last snapshot writes every stable message to the segment files, in order (a running server
    // writes them at its snapshots, so how many are on disk before depends on timing; a crashed one replays its journal).
    const groupDir = join(cluster.dataDir(2), 'history', streamDirName('long'));
    expect(existsSync(groupDir)).to.equal(true);
    const stored = readdirSync(groupDir)
      .sort()
      .flatMap((file) => readFileSync(join(groupDir, file), 'utf8').split('\n').filter(Boolean))
      .map((line) => (JSON.parse(line) as { text: string }).text);
    expect(stored).to.deep.equal(Array.from({ length: total }, (_, i) => `message ${i + 1}`));
    await cluster.stopAll();
    await cluster.startAll();
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the restarted servers agreeing');
    for (const id of [1, 2, 3]) {
      const again = await connect(id);
      await again.call('user', { name: `check${id}` });
      await again.call('join', { group: 'long' });
      const page = await again.call('history', { from: 1141, count: 20 });
      expect(texts(page)).to.deep.equal(Array.from({ length: 20 }, (_, i) => [1141 + i, `message ${1141 + i}`]));
      expect(page.messages.find((m) => m.n === 1150)?.likedBy).to.deep.equal(['cy']);
    }
  });

  it('reads any group without joining: groups lists them, history pages a named group, nothing is broadcast and no member is pushed anything', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    // Raw WebSocket clients (support/rawClient.ts): what any program sees.
    const member = await chat.raw(1);
    await member.call('user', { name: 'mia' });
    await member.call('join', { group: 'quiet' });
    await Promise.all(Array.from({ length: 30 }, (_, i) => member.call('append', { text: `note ${i + 1}` })));
    await cluster.waitFor(() => cluster.converged(), 20_000, 'every message stable everywhere');
    // The member's last push marks its messages stable (stable marks alone are pushed too, at most every 100 ms).
    await waitUntil(() => member.pushes.at(-1)?.params.messages.every((m) => m.stable) === true, 5_000, 'the push marking every message stable');
    await new Promise((r) => setTimeout(r, 100));
    const pushesBefore = member.pushes.length;
    const orderBefore = cluster.daemon(2).status().seqVector;

    // A reader with no user name and no group.
    const reader = await chat.raw(2);
    expect(await reader.call('groups')).to.deep.equal({ groups: [{ group: 'quiet', total: 30, participants: ['mia'] }] });
    const page = await reader.call('history', { group: 'quiet', from: 11, count: 10 });
    expect(page.total).to.equal(30);
    expect(page.messages.map((m) => [m.n, m.text, m.stable])).to.deep.equal(Array.from({ length: 10 }, (_, i) => [11 + i, `note ${11 + i}`, true]));
    // Paged by message id, which stays right when a heal moves places: after message 11, and before it.
    const eleventh = page.messages.find((m) => m.n === 11)!;
    expect((await reader.call('history', { group: 'quiet', since: eleventh.id, count: 5 })).messages.map((m) => m.n)).to.deep.equal([12, 13, 14, 15, 16]);
    expect((await reader.call('history', { group: 'quiet', before: eleventh.id, count: 4 })).messages.map((m) => m.n)).to.deep.equal([7, 8, 9, 10]);
    expect((await reader.call('history', { group: 'quiet', before: page.messages[0].id })).messages.map((m) => m.n)).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 1));
    expect((await reader.answer('history', { group: 'quiet', since: eleventh.id, from: 3 })).error).to.include({ code: -32602, message: 'invalid history: give at most one of from, since and before' });
    expect((await reader.answer('history', { group: 'quiet', since: '999999.3' })).error).to.include({ code: RpcErrors.unknownMessage });
    const missing = await reader.answer('history', { group: 'nowhere' });
    expect(missing.error).to.include({ code: RpcErrors.noSuchGroup, message: 'there is no group nowhere (groups lists them)' });
    await new Promise((r) => setTimeout(r, 100));
    expect(member.pushes.length).to.equal(pushesBefore);
    expect(cluster.daemon(2).status().seqVector).to.deep.equal(orderBefore);
  });

  it('pushes carry what changed (versioned): a client keeps an exact copy of the history from pushes alone, across a heal that reorders and likes on old messages', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const watcher = await connect(1);
    type Copy = { id: string; text: string; likedBy: string[] };
    const copy: Copy[] = [];
    const versions: number[] = [];
    let lastPush: { messages: { stable: boolean }[] } | undefined;
    watcher.on('group', (push) => {
      lastPush = push;
      versions.push(push.version);
      const { from, messages, likes } = push.changes;
      expect(messages, 'a change small enough to push').to.not.equal(undefined);
      copy.length = from - 1;
      for (const m of messages!) copy.push({ id: m.id, text: m.text, likedBy: [...m.likedBy] });
      for (const like of likes) {
        expect(copy[like.n - 1].id).to.equal(like.id);
        copy[like.n - 1].likedBy = [...like.likedBy];
      }
      expect(copy.length).to.equal(push.total);
    });
    await watcher.call('user', { name: 'watch' });
    expect((await watcher.call('join', { group: 'mirror' })).total).to.equal(0);
    const left = await connect(2);
    const right = await connect(3);
    for (const [c, name] of [[left, 'lena'], [right, 'ravi']] as const) {
      await c.call('user', { name });
      await c.call('join', { group: 'mirror' });
    }
    const early = await left.call('append', { text: 'before the partition' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'stable everywhere');
    cluster.partition([[1, 2], [3]]);
    for (let i = 0; i < 5; i++) {
      await left.call('append', { text: `left ${i}` });
      await right.call('append', { text: `right ${i}` });
    }
    await right.call('like', { id: early.id });
    cluster.heal();
    await cluster.waitFor(() => cluster.converged(), 20_000, 'one order after the heal');
    await watcher.call('like', { id: early.id });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the like everywhere');
    const expected = async () => (await watcher.call('history', { group: 'mirror' })).messages.map((m) => ({ id: m.id, text: m.text, likedBy: [...m.likedBy] }));
    await waitUntil(async () => JSON.stringify(copy) === JSON.stringify(await expected()), 5_000, () => `the copy: ${JSON.stringify(copy)}`);
    expect(copy.find((m) => m.text === 'before the partition')?.likedBy).to.have.members(['ravi', 'watch']);
    expect(versions).to.deep.equal(versions.map((_, i) => i + 1));
    // Stable marks alone are pushed too (at most every 100 ms): the last push shows everything stable.
    await waitUntil(() => lastPush!.messages.every((m) => m.stable), 5_000, 'a push marking the messages stable');
  });

  it('marks a message tentative until it is stable', async () => {
    const cluster = await chat.create(3, { timers: fastTimers });
    const writer = await connect(1);
    await writer.call('user', { name: 'tim' });
    await writer.call('join', { group: 'marks' });
    await cluster.waitFor(() => cluster.converged(), 20_000, 'the join stable everywhere');
    // With server 3 cut off, a message timestamped past the last clock server 3 reported cannot become stable.
    cluster.partition([[1, 2], [3]]);
    await writer.call('append', { text: 'first while 3 is away' });
    await writer.call('append', { text: 'second while 3 is away' });
    await new Promise((r) => setTimeout(r, 200));
    const tentative = await writer.call('history', {});
    expect(tentative.messages.map((m) => [m.text, m.stable])[1]).to.deep.equal(['second while 3 is away', false]);
    cluster.heal();
    await cluster.waitFor(() => cluster.converged(), 20_000, 'stable after the heal');
    expect((await writer.call('history', {})).messages.map((m) => m.stable)).to.deep.equal([true, true]);
  });

  it('a change that only moves the stable point is pushed: a partitioned writer\'s two tentative messages are pushed as stable after the heal, with nothing else written', async () => {
    const cluster = await chat.create(5, { timers: fastTimers });
    const writer = await chat.raw(1);
    await cluster.waitFor(() => cluster.converged(), 20_000, 'a settled cluster');
    cluster.partition([[1], [2, 3, 4, 5]]);
    await writer.call('user', { name: 'sol' });
    await writer.call('join', { group: 'solo' });
    const answers = [await writer.call('append', { text: 'one' }), await writer.call('append', { text: 'two' })];
    expect(answers.map((a) => a.tentative)).to.deep.equal([true, true]);
    await waitUntil(() => writer.pushes.some((p) => p.params.messages.length === 2), 5_000, 'the push with both messages');
    expect(writer.pushes.at(-1)!.params.messages.map((m) => m.stable)).to.deep.equal([false, false]);
    const pushesBefore = writer.pushes.length;
    cluster.heal();
    await waitUntil(() => writer.pushes.slice(pushesBefore).some((p) => p.params.messages.every((m) => m.stable)), 5_000, 'a push marking both stable');
    const marks = writer.pushes.slice(pushesBefore).find((p) => p.params.messages.every((m) => m.stable))!.params;
    expect(marks.messages.map((m) => m.text)).to.deep.equal(['one', 'two']);
  });
});
