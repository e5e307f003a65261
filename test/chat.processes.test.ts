/**
 * Chat end to end with real daemon processes and scripted terminal clients.
 */
import { ProcessCluster, waitUntil } from './support/processCluster.js';

describe('chat with three daemon processes and scripted clients', function () {
  this.timeout(90_000);
  let cluster: ProcessCluster | undefined;

  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it('two clients on different servers chat and like, see the same history, get errors, and survive their server being killed', async () => {
    cluster = await ProcessCluster.create(3);
    await cluster.startAll();
    const alice = cluster.client(1);
    const bob = cluster.client(2);
    await alice.waitFor(/^connected to /);
    await bob.waitFor(/^connected to /);

    await alice.run('a too early', /^error: set a user name first \(u <name>\)$/);
    await alice.run('u alice', /^user: alice$/);
    await alice.run('a still early', /^error: join a group first \(j <group>\)$/);
    await alice.run('j room', /^--- room \| participants: alice \| 0 messages ---$/);
    await bob.run('u bob', /^user: bob$/);
    await bob.run('j room', /^--- room \| participants: alice, bob \| \d+ messages? ---$/);

    alice.send('a hello from alice');
    await bob.waitFor(/^ {2}1\. alice: hello from alice {2}\[0 likes\]$/);
    bob.send('a hi from bob');
    await alice.waitFor(/^ {2}2\. bob: hi from bob {2}\[0 likes\]$/);

    await bob.run('l 1', /^liked message 1$/);
    await alice.waitFor(/^ {2}1\. alice: hello from alice {2}\[1 like\]$/);
    await alice.run('l 2', /^liked message 2$/);
    await bob.run('l 1', /^error: you already like this message$/);
    await alice.run('l 1', /^error: you cannot like your own message$/);
    await bob.run('r 1', /^removed your like from message 1$/);
    await bob.run('r 1', /^error: you have not liked this message$/);
    await alice.run('l 99', /^error: there is no message 99 in room \(it has 2\)$/);
    await alice.run('j', /^error: usage: j <group>$/);
    await alice.run('u has space', /^error: invalid user name: a user name has printable characters and no spaces$/);
    await alice.run('frobnicate', /^error: unknown command "frobnicate" \(h for help\)$/);
    await alice.run('v', /^view of server 1: 1, 2, 3$/);

    // Both show the same numbered history with the same like counts.
    const expected = [
      '--- room | participants: alice, bob | 2 messages ---',
      '  1. alice: hello from alice  [0 likes]',
      '  2. bob: hi from bob  [1 like]',
    ];
    await waitUntil(async () => {
      await alice.run('p', /^--- room/);
      await bob.run('p', /^--- room/);
      return JSON.stringify(alice.lastScreen()) === JSON.stringify(expected) && JSON.stringify(bob.lastScreen()) === JSON.stringify(expected);
    }, 10_000, 'identical histories');

    // Alice's server crashes: she is told at once, connects elsewhere and goes on.
    const before = alice.lines.length;
    cluster.kill(1);
    await alice.waitFor(/^connection to 127\.0\.0\.1:\d+ lost; connect to another server with c <id>$/, before);
    await alice.run('a lost?', /^error: not connected: connect to a server first/);
    await alice.run('c 3', /^--- room \| participants: /);
    alice.send('a alice is back');
    // Tentative while server 1 is out of sight: nothing can be final until every server's clock is known past it.
    await bob.waitFor(/^ {2}3\. alice: alice is back {2}\[0 likes\] {2}\(tentative\)$/);
    // Once server 1 times out of the view, bob's server shows only 2 and 3.
    await waitUntil(async () => /: 2, 3$/.test(bob.lines[await bob.run('v', /^view of server 2: /)]), 5_000, 'server 1 leaves the view');
  });
});
