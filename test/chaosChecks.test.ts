/** What tools/chaos checks in a final history against what its clients were told (src/tools/chaosChecks.ts). */
import { expect } from 'chai';
import { historyViolations as check, type ClientRecord, type FinalMessage, type LikeOp } from '../src/tools/chaosChecks.js';

const message = (id: string, user: string, text: string, likes: string[] = []): FinalMessage => ({ id, user, text, likes });
const likeOp = (id: string, user: string, target: string, targetText: string, like = true): LikeOp => ({ id, user, target, targetText, like, rid: `${user}-L${id}` });
const client = (record: Partial<ClientRecord>): ClientRecord => ({ appends: [], resent: [], likes: [], doubtful: new Set(), ...record });

/** The checks with the final state's request log: request id -> the id of its first copy. */
const historyViolations = (history: FinalMessage[], clients: ClientRecord[], firstCarriers: Record<string, string> = {}) => check(history, clients, (user, rid) => firstCarriers[`${user} ${rid}`]);

describe('tools/chaos: the checks of a final history', () => {
  it('a history that keeps every promise has no violations', () => {
    const history = [message('2.1', 'u1', 'u1-1', ['u3']), message('5.3', 'u3', 'u3-1')];
    const clients = [client({ appends: [{ id: '2.1', text: 'u1-1' }] }), client({ appends: [{ id: '5.3', text: 'u3-1' }], likes: [likeOp('6.3', 'u3', '2.1', 'u1-1')] })];
    expect(historyViolations(history, clients)).to.deep.equal([]);
  });

  it('a confirmed append missing or changed, a text twice, a resent append not there once: each reported', () => {
    const history = [message('2.1', 'u1', 'other'), message('3.2', 'u2', 'u2-1'), message('4.2', 'u2', 'u2-1')];
    const clients = [client({ appends: [{ id: '2.1', text: 'u1-1' }, { id: '9.1', text: 'u1-2' }], resent: ['u1-3'] })];
    expect(historyViolations(history, clients)).to.deep.equal([
      '"u2-1" is in the history 2 times',
      'confirmed append 2.1 ("u1-1") is "other"',
      'confirmed append 9.1 ("u1-2") is missing',
      'resent append "u1-3" is in the history 0 times',
    ]);
  });

  it('likes follow the confirmed operations in the total order by the chat\'s rule, not the order they were confirmed in', () => {
    const history = [message('2.1', 'u1', 'u1-1', ['u3'])];
    // Confirmed unlike (7.4) first, then a like through a server whose clock was ahead (9.3), then a like ordered before both (6.5).
    const likes = [likeOp('7.4', 'u3', '2.1', 'u1-1', false), likeOp('9.3', 'u3', '2.1', 'u1-1'), likeOp('6.5', 'u3', '2.1', 'u1-1')];
    expect(historyViolations(history, [client({ likes })])).to.deep.equal([]);
    expect(historyViolations([message('2.1', 'u1', 'u1-1')], [client({ likes })])).to.deep.equal(['u3 likes 2.1 by its confirmed operations, the state says otherwise']);
  });

  it('a like the state lost is reported, unless its outcome was in doubt', () => {
    const history = [message('2.1', 'u1', 'u1-1')];
    const likes = [likeOp('6.3', 'u3', '2.1', 'u1-1')];
    expect(historyViolations(history, [client({ likes })])).to.deep.equal(['u3 likes 2.1 by its confirmed operations, the state says otherwise']);
    expect(historyViolations(history, [client({ likes, doubtful: new Set(['u3 2.1']) })])).to.deep.equal([]);
  });

  it('a like of the copy an append\'s retry made has no effect when the original came first in the order; a like of a message that vanished is reported', () => {
    // u1's "u1-5" was taken by server 1 (4.1), which died before answering; the retry through server 3 made 12.3, which u2 liked; 4.1 came first.
    const history = [message('4.1', 'u1', 'u1-5')];
    const clients = [client({ resent: ['u1-5'] }), client({ likes: [likeOp('13.3', 'u2', '12.3', 'u1-5')] })];
    expect(historyViolations(history, clients)).to.deep.equal([]);
    expect(historyViolations([], clients)).to.deep.equal([
      'resent append "u1-5" is in the history 0 times',
      'u2 liked 12.3 ("u1-5"), which is not in the history and is no copy of a message that is',
    ]);
  });

  it('a like resent after its connection died counts at its first copy\'s place, which the request log names; forgotten there, it is in doubt', () => {
    // u3 liked 2.1 through server 1 (6.1, answer lost), resent it through server 3 (answered 9.3, a copy without effect), and unliked it at 8.4.
    const resent: LikeOp = { ...likeOp('9.3', 'u3', '2.1', 'u1-1'), rid: 'u3-L5', resent: true };
    const clients = [client({ likes: [resent, likeOp('8.4', 'u3', '2.1', 'u1-1', false)] })];
    const carriers = { 'u3 u3-L5': '6.1' };
    expect(historyViolations([message('2.1', 'u1', 'u1-1')], clients, carriers)).to.deep.equal([]);
    expect(historyViolations([message('2.1', 'u1', 'u1-1', ['u3'])], clients, carriers)).to.deep.equal(['u3 does not like 2.1 by its confirmed operations, the state says otherwise']);
    // Placed at its own answer (9.3) it would come after the unlike: the opposite verdict.
    expect(historyViolations([message('2.1', 'u1', 'u1-1')], clients, { 'u3 u3-L5': '9.3' })).to.deep.equal(['u3 likes 2.1 by its confirmed operations, the state says otherwise']);
    expect(historyViolations([message('2.1', 'u1', 'u1-1', ['u3'])], clients, {})).to.deep.equal([]);
  });
});
