/** The chat state machine: the rules of the spec (section 4), and determinism under any delivery order. */
import { expect } from 'chai';
import fc from 'fast-check';
import type { Message } from '../src/broadcast/types.js';
import { TentativeOrder } from '../src/broadcast/tentativeOrder.js';
import { compareOrder, formatMessageId, parseMessageId } from '../src/broadcast/types.js';
import { noStoredTargets } from '../src/chat/likes.js';
import { canonicalJson, emptyChatState, type ChatState, type Group } from '../src/chat/model.js';
import { encodeOp, operationOf, type ChatOp } from '../src/chat/operations.js';
import { applyBatch } from '../src/chat/reducer.js';
import { ChatReplica } from '../src/chat/replica.js';
import { maxRequestsPerUser, maxStreamsPerUser, originalRequest } from '../src/chat/requests.js';
import { readChatSnapshot } from '../src/chat/snapshot.js';
import { ChatApplication } from '../src/server/chatApplication.js';
import { type StoredHistory } from '../src/server/historyStore.js';
import { messageRange, plainChatState } from '../src/server/groupQueries.js';
import { messageCount } from '../src/chat/model.js';
import { SimFileSystem } from '../src/sim/simFileSystem.js';

/** No stored history: these states never compact into a store. */
const noStoredHistory: StoredHistory = { read: () => [], find: () => undefined };
/** Apply to a state that stores nothing (nothing in these tests is compacted into a store). */
const applyMessages = (state: ChatState, messages: readonly Message[]) => applyBatch(state, messages, noStoredTargets).state;
const messagesOf = (group: Group) => messageRange(group, 0, messageCount(group), noStoredHistory).map(({ message, likes }) => ({ ...message, likes }));
/** The chat application on a simulated disk, with segments of a few messages so that histories cross many. */
function testApp(saved?: unknown): ChatApplication {
  const fs = new SimFileSystem(() => 0, () => 0);
  fs.makeDir('/data');
  return new ChatApplication(saved, { fs, dir: '/data', segmentMessages: 4 });
}
/** A snapshot's chat state read back. */
function restoreChatState(saved: unknown): ChatState {
  const read = readChatSnapshot({ chat: saved });
  if (read instanceof Error) throw read;
  return read.chat;
}
const plain = (state: ChatState, store = noStoredHistory) => canonicalJson(plainChatState(state, store));

let ts = 0;
const msg = (sender: number, op: ChatOp): Message => ({ sender, seq: ++ts, ts, payload: encodeOp(op) });
const join = (session: string, user: string, group: string, sender = 1) => msg(sender, { op: 'join', session, user, group });
const append = (session: string, user: string, group: string, text: string, sender = 1) => msg(sender, { op: 'append', session, user, group, text });
const like = (user: string, group: string, message: string, op: 'like' | 'unlike' = 'like') => msg(2, { op, user, group, message: parseMessageId(message)! });

describe('chat state machine: the rules', () => {
  beforeEach(() => {
    ts = 0;
  });

  it("a message's operation is decoded once, kept out of the message's JSON, and never taken for another payload's", () => {
    const m = append('s1', 'alice', 'a', 'hello');
    const json = JSON.stringify(m);
    const op = operationOf(m);
    expect(op).to.deep.equal({ op: 'append', session: 's1', user: 'alice', group: 'a', text: 'hello' });
    expect(operationOf(m)).to.equal(op);
    // What the journal, the snapshots and the wire write of it is unchanged.
    expect(JSON.stringify(m)).to.equal(json);
    expect(Object.keys(m)).to.deep.equal(['sender', 'seq', 'ts', 'payload']);
    // A copy with another payload (spread, so it carries the cache) decodes its own.
    const copy = { ...m, payload: encodeOp({ op: 'leave', session: 's1' }) };
    expect(operationOf(copy)).to.deep.equal({ op: 'leave', session: 's1' });
    // A frozen message is decoded each time, the same way; a payload that is no operation is none.
    expect(operationOf(Object.freeze({ ...append('s2', 'bob', 'a', 'hi') }))).to.deep.include({ op: 'append', text: 'hi' });
    expect(operationOf({ sender: 1, seq: 99, ts: 99, payload: '{"op":"dance"}' })).to.equal(undefined);
  });

  it("an append's text decodes to exactly what was sent, whatever it holds and wherever else its characters appear in the payload", () => {
    const texts = ['say "hi" \\ there', '","user":"alice', 'append', 'a', 'line\u2028break and a tab\t', '👩‍👩‍👧‍👦 family 🏳️‍🌈', '\\u0041 is not A', 'x'.repeat(1000)];
    for (const text of texts) {
      const m = append('s1', 'alice', 'a', text);
      expect(operationOf(m)).to.deep.equal({ op: 'append', session: 's1', user: 'alice', group: 'a', text });
    }
  });

  it('an operation decodes the same whether read as encodeOp wrote it or by JSON.parse: any text, request id and done, and payloads that only look like an append', () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\u0000', '\u001f', '","rid":"x', '"}', '\ud800'));
    const op = fc.record(
      { op: fc.constant('append' as const), session: text, user: text, group: text, text, rid: text, done: fc.oneof(fc.integer({ min: 1 }), fc.constantFrom(0, -1, 1.5, 2 ** 53)) },
      { requiredKeys: ['op', 'session', 'user', 'group', 'text'] },
    );
    // Trailing space: JSON reads the payload the same, the reader of encodeOp's own form does not take it.
    const byJson = (payload: string) => operationOf({ sender: 1, seq: 1, ts: 1, payload: `${payload} ` });
    const decoded = (payload: string) => operationOf({ sender: 1, seq: 1, ts: 1, payload });
    fc.assert(
      fc.property(op, (o) => {
        const payload = encodeOp(o as ChatOp);
        // encodeOp writes what JSON.stringify writes of the fields in their order.
        const { op: kind, session, user, group, text: body, rid, done } = o;
        expect(payload).to.equal(JSON.stringify({ op: kind, session, user, group, text: body, rid, done }));
        expect(decoded(payload)).to.deep.equal(byJson(payload));
      }),
      { numRuns: 2000 },
    );
    const lookalikes = [
      '{"op":"append","session":"s","user":"u","group":"g","text":"t"}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","rid":"r"}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","rid":"r","done":7}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","rid":"r","done":07}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","rid":"r","done":1e3}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","rid":"r","done":1234567890123456}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","done":7}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t\u0009"}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t\tx"}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t"}}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","text":"again"}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","rid":"r"',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t","x":1}',
      '{"op":"append","session":"s","user":"u","group":"g"}',
      '{"op":"append","session":"s","user":"u","group":"g","text":"t"',
    ];
    for (const payload of lookalikes) expect(decoded(payload), payload).to.deep.equal(byJson(payload));
    expect(decoded(lookalikes[2])).to.deep.equal({ op: 'append', session: 's', user: 'u', group: 'g', text: 't', rid: 'r', done: 7 });
    expect(decoded(lookalikes[9]), 'not JSON').to.equal(undefined);
  });

  it('join creates the group, and joining another group leaves the previous one', () => {
    const state = applyMessages(emptyChatState, [join('s1', 'alice', 'a', 3), join('s2', 'bob', 'a'), join('s1', 'alice', 'b', 3)]);
    expect(Object.keys(state.groups).sort()).to.deep.equal(['a', 'b']);
    expect(state.groups.a.members).to.deep.equal({ s2: { user: 'bob', server: 1 } });
    expect(state.groups.b.members).to.deep.equal({ s1: { user: 'alice', server: 3 } });
    expect(state.sessions).to.deep.equal({ s1: 'b', s2: 'a' });
  });

  it('names that are also Object.prototype members are just names, before and after a snapshot', () => {
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    const ops = names.flatMap((name, i) => [join(`s${i}`, name, name), append(`s${i}`, name, name, `in ${name}`), like('other', name, `${3 * i + 2}.1`)]);
    const state = applyMessages(emptyChatState, ops);
    const restored = restoreChatState(JSON.parse(JSON.stringify(state)));
    for (const s of [state, restored]) {
      expect(Object.keys(s.groups).sort()).to.deep.equal([...names].sort());
      for (const name of names) {
        expect(messagesOf(s.groups[name]).map((m) => [m.text, m.likes])).to.deep.equal([[`in ${name}`, ['other']]]);
      }
    }
    expect(({} as Record<string, unknown>).user, 'Object.prototype untouched').to.equal(undefined);
    const after = applyMessages(restored, [msg(1, { op: 'leave', session: 's0' }), join('s9', 'late', '__proto__')]);
    expect(Object.values(after.groups.__proto__.members)).to.deep.equal([{ user: 'late', server: 1 }]);
  });

  it('a snapshot from before the history store (whole history and likes inside) is read: its messages go into the store, its likes into the table', () => {
    const old = {
      groups: { g: { name: 'g', members: { s1: { user: 'alice', server: 1 } }, history: { chunks: [[{ ts: 2, sender: 1, user: 'alice', text: 'hi', likes: ['bob'] }], [{ id: '5.3', user: 'bob', text: 'yo', likes: [] }]], count: 2 } } },
      sessions: { s1: 'g' },
    };
    const app = testApp(old);
    const g = app.shown().groups.g;
    expect(g.stored).to.equal(2);
    expect(g.tail.count).to.equal(0);
    expect(messageRange(g, 0, 2, app.store).map(({ message, likes }) => [formatMessageId(message), message.user, message.text, likes])).to.deep.equal([
      ['2.1', 'alice', 'hi', ['bob']],
      ['5.3', 'bob', 'yo', []],
    ]);
    // Its next snapshot holds no message, only the count.
    expect(JSON.stringify(app.snapshot())).to.not.include('"hi"');
  });

  it('leave removes the member; the group and its history stay', () => {
    const state = applyMessages(emptyChatState, [join('s1', 'alice', 'g'), append('s1', 'alice', 'g', 'hi'), msg(1, { op: 'leave', session: 's1' })]);
    expect(state.groups.g.members).to.deep.equal({});
    expect(messagesOf(state.groups.g).map((m) => m.text)).to.deep.equal(['hi']);
    expect(state.sessions).to.deep.equal({});
  });

  it('a message id is its broadcast (ts, sender)', () => {
    const state = applyMessages(emptyChatState, [join('s1', 'alice', 'g'), append('s1', 'alice', 'g', 'hi', 4)]);
    expect(messagesOf(state.groups.g)[0]).to.deep.include({ ts: 2, sender: 4, user: 'alice' });
  });

  it('one like per user per message; not one\'s own; unlike only after a like', () => {
    const base = [join('s1', 'alice', 'g'), append('s1', 'alice', 'g', 'hi')];
    const id = '2.1';
    const likes = (ops: Message[]) => messagesOf(applyMessages(emptyChatState, [...base, ...ops]).groups.g)[0].likes;
    expect(likes([like('bob', 'g', id), like('bob', 'g', id), like('carol', 'g', id)])).to.deep.equal(['bob', 'carol']);
    expect(likes([like('alice', 'g', id)])).to.deep.equal([]);
    expect(likes([like('bob', 'g', id, 'unlike')])).to.deep.equal([]);
    expect(likes([like('bob', 'g', id), like('bob', 'g', id, 'unlike')])).to.deep.equal([]);
    expect(likes([like('bob', 'g', id), like('bob', 'g', id, 'unlike'), like('bob', 'g', id)])).to.deep.equal(['bob']);
    expect(likes([like('bob', 'g', '99.1')])).to.deep.equal([]);
  });

  it('an append retried with its request id through another server: the copy ordered second never enters the history, and a like of that copy changes nothing', () => {
    // Server 1 took "hi" (2.1) and died before answering; the retry through server 3 made a copy (3.3) that another user liked while it was tentative.
    const retried = (sender: number) => msg(sender, { op: 'append', session: 's1', user: 'alice', group: 'g', text: 'hi', rid: 'r1' });
    const state = applyMessages(emptyChatState, [join('s1', 'alice', 'g'), retried(1), retried(3), like('bob', 'g', '3.3')]);
    expect(messagesOf(state.groups.g).map((m) => [`${m.ts}.${m.sender}`, m.text, m.likes])).to.deep.equal([['2.1', 'hi', []]]);
  });

  it('a user\'s last 1,000 request ids at least are remembered (a retry of one is applied once); a request copies one small bucket, not the log', () => {
    const request = (rid: string, text = rid) => msg(1, { op: 'append', session: 's1', user: 'alice', group: 'g', text, rid });
    const texts = (state: ChatState) => messagesOf(state.groups.g).map((m) => m.text);
    let state = applyMessages(emptyChatState, [join('s1', 'alice', 'g'), request('first')]);
    for (let i = 0; i < maxRequestsPerUser; i++) state = applyMessages(state, [request(`r${i}`)]);
    expect(texts(applyMessages(state, [request('first', 'again')])).filter((t) => t === 'again')).to.deep.equal([]);
    expect(originalRequest(state.requests, { user: 'alice', rid: 'first' })).to.deep.equal({ id: '2.1' });
    // Past a bucket more, the oldest ids are forgotten: a retry that late is applied again.
    for (let i = 0; i < 100; i++) state = applyMessages(state, [request(`s${i}`)]);
    expect(originalRequest(state.requests, { user: 'alice', rid: 'first' })).to.equal(undefined);
    expect(texts(applyMessages(state, [request('first', 'again')]))).to.include('again');
    // One more request: every bucket but the last is shared with the state before.
    const next = applyMessages(state, [request('one more')]);
    const [before, after] = [state, next].map((x) => x.requests.alice.buckets);
    expect(after.slice(0, -1).filter((bucket, i) => bucket !== before[i])).to.deep.equal([]);
  });

  it('a stream request id is remembered until the client says it holds the answer (done), however many come between; a copy of one it acknowledged is refused too', () => {
    const request = (n: number, text: string, done?: number) => msg(1, { op: 'append', session: 's1', user: 'alice', group: 'g', text, rid: `st:${n}`, ...(done ? { done } : {}) });
    const texts = (state: ChatState) => messagesOf(state.groups.g).map((m) => m.text);
    let state = applyMessages(emptyChatState, [join('s1', 'alice', 'g'), request(1, 'first')]);
    for (let n = 2; n <= 3000; n++) state = applyMessages(state, [request(n, `r${n}`, 1)]);
    // Far past any window: the first is still remembered, so a copy of it changes nothing.
    expect(texts(applyMessages(state, [request(1, 'first again', 1)]))).to.not.include('first again');
    expect(state.requests.alice.streams!.st.open).to.equal(3000);
    // The client holds every answer below 3001: all forgotten, and a late copy of one is refused all the same.
    state = applyMessages(state, [request(3001, 'last', 3001)]);
    expect(state.requests.alice.streams!.st).to.deep.include({ doneBelow: 3001, open: 1 });
    expect(originalRequest(state.requests, { user: 'alice', rid: 'st:1' })).to.equal(undefined);
    const late = applyBatch(state, [request(1, 'first, late copy')], noStoredTargets);
    expect(late.refusals).to.deep.equal(['duplicate-request']);
    expect(texts(late.state)).to.not.include('first, late copy');
    // Through a snapshot too.
    expect(restoreChatState(JSON.parse(JSON.stringify(state))).requests.alice.streams!.st).to.deep.include({ doneBelow: 3001, open: 1 });
  });

  it('a user\'s streams are bounded: past maxStreamsPerUser the stream used longest ago goes', () => {
    const request = (stream: string, n: number) => msg(1, { op: 'append', session: 's1', user: 'alice', group: 'g', text: `${stream}:${n}`, rid: `${stream}:${n}` });
    let state = applyMessages(emptyChatState, [join('s1', 'alice', 'g'), request('first', 1)]);
    for (let i = 0; i < maxStreamsPerUser - 1; i++) state = applyMessages(state, [request(`s${i}`, 1)]);
    // The first stream is used again: s0 is now the one used longest ago.
    state = applyMessages(state, [request('first', 2)]);
    expect(Object.keys(state.requests.alice.streams!).length).to.equal(maxStreamsPerUser);
    state = applyMessages(state, [request('new', 1)]);
    const streams = Object.keys(state.requests.alice.streams!);
    expect(streams.length).to.equal(maxStreamsPerUser);
    expect(streams).to.include.members(['first', 'new', 's1']);
    expect(streams).to.not.include('s0');
  });

  it('a version 2 snapshot\'s stream requests (a dictionary of ids per bucket) are read: still remembered with their outcome, and the stream goes on', () => {
    const stream = { doneBelow: 104, open: 3, last: '8.2', buckets: { '1': { size: 3, ids: { '104': '6.1', '105': '7.1', '107': '8.2' }, refused: { '107': 'already-liked' } } } };
    const saved = { version: 2, chat: { groups: {}, sessions: {}, requests: { alice: { buckets: [], streams: { st: stream } } } }, order: undefined };
    const read = readChatSnapshot(saved);
    if (read instanceof Error) throw read;
    const request = (n: number) => ({ user: 'alice', rid: `st:${n}` });
    expect([104, 105, 106, 107].map((n) => originalRequest(read.chat.requests, request(n)))).to.deep.equal([{ id: '6.1' }, { id: '7.1' }, undefined, { id: '8.2', refused: 'already-liked' }]);
    // A copy of one is refused; a new one is remembered; the client's doneBelow forgets what it covers.
    const copy = msg(1, { op: 'append', session: 's1', user: 'alice', group: 'g', text: 'copy', rid: 'st:105' });
    expect(applyBatch(read.chat, [copy], noStoredTargets).refusals).to.deep.equal(['duplicate-request']);
    const next = applyMessages(read.chat, [msg(1, { op: 'append', session: 's1', user: 'alice', group: 'g', text: 'new', rid: 'st:230', done: 106 })]);
    expect(next.requests.alice.streams!.st).to.deep.include({ doneBelow: 106, open: 2 });
    expect([105, 107, 230].map((n) => originalRequest(next.requests, request(n))?.id)).to.deep.equal([undefined, '8.2', `${ts}.1`]);
    // Written again as this version, it reads back the same.
    const again = readChatSnapshot(JSON.parse(JSON.stringify({ version: 3, chat: next, order: undefined })));
    if (again instanceof Error) throw again;
    expect(plain(again.chat)).to.equal(plain(next));
  });

  it('a snapshot\'s request log from before the buckets is read: its ids are still remembered, with their outcome', () => {
    const old = { groups: {}, sessions: {}, requests: { alice: { ids: { a: '5.1', b: '6.2' }, refused: { b: 'already-liked' }, order: ['a', 'b'] } } };
    const state = restoreChatState(old);
    expect(originalRequest(state.requests, { user: 'alice', rid: 'a' })).to.deep.equal({ id: '5.1' });
    expect(originalRequest(state.requests, { user: 'alice', rid: 'b' })).to.deep.equal({ id: '6.2', refused: 'already-liked' });
    expect(plainChatState(state, noStoredHistory).requests).to.deep.equal({ alice: { a: { id: '5.1' }, b: { id: '6.2', refused: 'already-liked' } } });
  });

  it('same-named groups created on both sides of a partition are one group', () => {
    const state = applyMessages(emptyChatState, [join('s1', 'alice', 'g', 1), join('s4', 'dave', 'g', 4), append('s1', 'alice', 'g', 'left', 1), append('s4', 'dave', 'g', 'right', 4)]);
    expect(Object.keys(state.groups)).to.deep.equal(['g']);
    expect(Object.values(state.groups.g.members).map((m) => m.user).sort()).to.deep.equal(['alice', 'dave']);
    expect(messagesOf(state.groups.g).map((m) => m.text)).to.deep.equal(['left', 'right']);
  });

  it('a payload that is not an operation changes nothing', () => {
    const state = applyMessages(emptyChatState, [{ sender: 1, seq: 1, ts: 1, payload: 'not json' }, { sender: 1, seq: 2, ts: 2, payload: '{"op":"join"}' }]);
    expect(state).to.deep.equal(emptyChatState);
  });
});

/** Operations over a few users, sessions and groups, so that likes and leaves collide often. */
const users = ['ann', 'bo', 'cy'];
const opArb: fc.Arbitrary<ChatOp> = fc.oneof(
  fc.record({ op: fc.constant('join' as const), session: fc.constantFrom('s1', 's2', 's3'), user: fc.constantFrom(...users), group: fc.constantFrom('x', 'y') }),
  fc.record({ op: fc.constant('leave' as const), session: fc.constantFrom('s1', 's2', 's3') }),
  // Request ids from a small set, so that retries (the same id again, through any server) collide often.
  fc.record(
    { op: fc.constant('append' as const), session: fc.constantFrom('s1', 's2'), user: fc.constantFrom(...users), group: fc.constantFrom('x', 'y'), text: fc.string({ minLength: 1, maxLength: 5 }), rid: fc.constantFrom('r1', 'r2') },
    { requiredKeys: ['op', 'session', 'user', 'group', 'text'] },
  ),
  fc.record(
    { op: fc.constantFrom('like' as const, 'unlike' as const), user: fc.constantFrom(...users), group: fc.constantFrom('x', 'y'), message: fc.constantFrom('1.1', '2.2', '3.3', '4.1', '5.2', '6.3').map((id) => parseMessageId(id)!), rid: fc.constantFrom('r1', 'r2') },
    { requiredKeys: ['op', 'user', 'group', 'message'] },
  ),
);

/** Messages with distinct (ts, sender) from three senders, each sender's in seq order. */
const messagesArb = fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), opArb), { minLength: 1, maxLength: 40 }).map((items) => {
  const seq = [0, 0, 0];
  return items.map(([sender, op], i): Message => ({ sender, seq: ++seq[sender - 1], ts: i + 1, payload: encodeOp(op) }));
});

describe('chat state machine: determinism (property)', () => {
  it('any delivery order, stabilisation schedule and reading schedule give the state of applying the total order', () => {
    const scenario = messagesArb.chain((messages) =>
      fc.tuple(
        fc.constant(messages),
        fc.shuffledSubarray(messages, { minLength: messages.length, maxLength: messages.length }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 7 })), { minLength: messages.length, maxLength: messages.length }),
      ),
    );
    fc.assert(
      fc.property(scenario, ([messages, deliveryOrder, steps]) => {
        const order = [...messages].sort(compareOrder);
        const reference = applyMessages(emptyChatState, order);
        const app = testApp();
        // The engine's own tentative order reports each change to the replica.
        const log = new TentativeOrder();
        const delivered = new Set<Message>();
        let stableCount = 0;
        for (let i = 0, b = 0; i < deliveryOrder.length; b++) {
          const [size, read] = steps[b];
          const batch = deliveryOrder.slice(i, i + size);
          i += batch.length;
          batch.forEach((m) => delivered.add(m));
          batch.forEach((m) => log.insert(m));
          // Stable: the longest prefix of the total order that has all been delivered, as the engine guarantees.
          let stableUpTo = stableCount;
          while (stableUpTo < order.length && delivered.has(order[stableUpTo])) stableUpTo++;
          if (b % 2 === 1) stableUpTo = stableCount; // sometimes stability lags behind delivery
          const change = log.takeChange();
          const stable = stableUpTo > stableCount ? log.takeStable(order[stableUpTo - 1].ts) : [];
          expect(stable).to.deep.equal(order.slice(stableCount, stableUpTo));
          app.apply(change, stable);
          stableCount = stableUpTo;
          // Read (and so checkpoint) at some steps, as pushes to clients and snapshots do.
          const sofar = order.filter((m) => delivered.has(m));
          // Sometimes move what the store holds out of the states first (as a snapshot does, and every few thousand stable messages).
          if (read & 4) app.snapshot();
          if (read & 1) expect(plain(app.shown(), app.store)).to.equal(plain(applyMessages(emptyChatState, sofar)));
          if (read & 2) expect(plain(app.replica.stableState(), app.store)).to.equal(plain(applyMessages(emptyChatState, order.slice(0, stableCount))));
          expect(app.replica.tentativeCount).to.equal(sofar.length - stableCount);
        }
        expect(plain(app.shown(), app.store)).to.equal(plain(reference));
        app.apply(log.takeChange(), log.takeStable(Infinity));
        expect(plain(app.replica.stableState(), app.store)).to.equal(plain(reference));
        app.snapshot();
        expect(plain(app.shown(), app.store)).to.equal(plain(reference));
        // Everything stable is in the store; the state keeps no message.
        for (const group of Object.values(app.replica.stableState().groups)) expect(group.tail.count).to.equal(0);
        expect(app.replica.tentativeCount).to.equal(0);
      }),
      { numRuns: 1000 },
    );
  });

  it('a late message re-applies only what was shown after it, not the whole tentative suffix', () => {
    const replica = new ChatReplica(emptyChatState);
    const join = (sender: number, seq: number, ts: number): Message => ({ sender, seq, ts, payload: encodeOp({ op: 'join', session: `s${sender}`, user: 'u', group: `g${ts}` }) });
    const log = new TentativeOrder();
    const deliver = (m: Message) => {
      log.insert(m);
      replica.apply(log.takeChange(), []);
      return replica.shown();
    };
    // Two servers send concurrently and nothing becomes stable; each message of server 2 arrives just after
    // server 1's next one was shown, so it lands one place before the end.
    for (let i = 0; i < 100; i++) {
      deliver(join(1, i + 1, 2 * i + 2));
      deliver(join(2, i + 1, 2 * i + 1));
    }
    expect(replica.shown().sessions).to.deep.equal({ s1: 'g200', s2: 'g199' });
    expect(replica.tentativeCount).to.equal(200);
    // One message re-applied per late one; rebuilding from the stable state would re-apply 1 + 3 + 5 + ... = 10,000.
    expect(replica.reapplied).to.equal(100);
  });

  it('late messages just after the stable point re-apply the tentative suffix, not the stable messages before it', () => {
    const replica = new ChatReplica(emptyChatState);
    const join = (sender: number, seq: number, ts: number): Message => ({ sender, seq, ts, payload: encodeOp({ op: 'join', session: `s${sender}`, user: 'u', group: `g${ts}` }) });
    const log = new TentativeOrder();
    // Each round servers 1 and 2's messages are shown, then server 3's earlier one lands before them and
    // becomes stable: the stable point never passes a checkpoint, as when three servers send concurrently.
    const rounds = 1000;
    for (let i = 0; i < rounds; i++) {
      log.insert(join(1, i + 1, 3 * i + 3));
      log.insert(join(2, i + 1, 3 * i + 2));
      replica.apply(log.takeChange(), []);
      replica.shown();
      const late = join(3, i + 1, 3 * i + 1);
      log.insert(late);
      replica.apply(log.takeChange(), log.takeStable(late.ts));
    }
    expect(replica.shown().sessions).to.deep.equal({ s1: `g${3 * rounds}`, s2: `g${3 * rounds - 1}`, s3: `g${3 * rounds - 2}` });
    expect(replica.tentativeCount).to.equal(2);
    // Each round the two messages shown the round before are applied again, into the stable state and on top
    // of it; rebuilding from a first checkpoint left behind the stable point would re-apply every stable
    // message since it (about 1,500 a round).
    expect(replica.reapplied).to.be.at.most(4 * rounds);
  });
});
