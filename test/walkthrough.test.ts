/**
 * The README walkthrough, scripted, against a test cluster of five daemon
 * processes started by tools/cluster (free ports, a temporary data root).
 */
import { expect } from 'chai';
import { freePorts } from '../src/tools/freePorts.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { statSync } from 'node:fs';
import { ErrorAnswer } from '../src/client/calls.js';
import { ChorusConnection } from '../src/client/connection.js';
import { processAlive } from '../src/storage/fileSystem.js';
import { consolePid, daemonLogFile } from '../src/tools/clusterProcesses.js';
import { ProcessCluster, waitUntil } from './support/processCluster.js';

type Row = { id: number; up: boolean; pid: number | null; status: (DaemonStatus & { faults: { blocked: number[] }; refusedRequests: number }) | null };

describe('walkthrough: run it, break it, inspect it', function () {
  this.timeout(120_000);
  let cluster: ProcessCluster | undefined;

  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it('partition with writes on both sides, heal, kill and relaunch, 30% loss, and inspect a stopped daemon', async () => {
    cluster = await ProcessCluster.create(5);
    const c = cluster;
    const status = async (): Promise<Row[]> => JSON.parse(await c.tool('cluster', 'status', '--json')) as Row[];
    const agree = async (ids = [1, 2, 3, 4, 5]) => {
      const rows = (await status()).filter((r) => ids.includes(r.id));
      return rows.every((r) => r.status && r.status.digest === rows[0].status!.digest && r.status.unstable === 0 && r.status.view.length === 5);
    };

    const [consolePort] = await freePorts(1);
    const started = await c.tool('cluster', 'start', '--console-port', String(consolePort));
    expect(started).to.match(/The cluster is up \(5 servers\)/);
    expect(started).to.contain(`Console: http://127.0.0.1:${consolePort}/`);
    expect((await fetch(`http://127.0.0.1:${consolePort}/`)).status).to.equal(200);
    expect(await c.tool('cluster', 'start', '--console-port', String(consolePort))).to.match(/already running.*nothing changed[^]*Console: .*already running/);
    expect((await status()).every((r) => r.up)).to.equal(true);
    await waitUntil(() => agree(), 10_000, 'all five see each other');
    // A healthy fresh cluster: nothing labelled bad (stale datagrams after a start are expected and not counted as such).
    expect(await c.tool('cluster', 'status')).not.to.match(/bad/i);
    const wide = (await c.tool('cluster', 'status', '--wide')).trimEnd().split('\n');
    const badColumn = wide[0].split(/\s{2,}/).indexOf('bad datagrams');
    expect(wide.slice(1).map((row) => row.split(/\s{2,}/)[badColumn])).to.deep.equal(['0', '0', '0', '0', '0']);
    expect((await c.tool('cluster', 'status')).split('\n').every((row) => row.length <= 100)).to.equal(true);

    // Refused requests are answered to their client, not written to the daemon log.
    const logFile = daemonLogFile(c.paths, 1);
    const logBefore = statSync(logFile).size;
    const rude = await ChorusConnection.connect(`127.0.0.1:${c.config.servers[0].clientPort}`);
    const refused = await Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) => {
        const call = rude.call.bind(rude) as (method: string, params: unknown) => Promise<unknown>;
        return i % 3 === 0 ? call('append', { text: 'no user yet' }) : i % 3 === 1 ? call('like', { message: 'not-an-id' }) : call('no-such-method', {});
      }),
    );
    rude.close();
    expect(refused.every((r) => r.status === 'rejected' && r.reason instanceof ErrorAnswer)).to.equal(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(statSync(logFile).size - logBefore).to.be.below(10_000);
    // ... and counted in the status instead.
    expect((await status())[0].status!.refusedRequests).to.be.at.least(1000);

    // Scripted clients: a command that fails makes the exit code 1, a clean script 0.
    const script = await c.clientScript(1, ['u carol', 'j scripts', 'a from a script']);
    expect(script).to.include({ code: 0 });
    // The output ends with the group as it is after the script: the push showing the new message came before the exit.
    expect(script.stdout.trimEnd().split('\n').at(-1)).to.match(/^\s+1\. carol: from a script/);
    const failed = await c.clientScript(1, ['a no user yet']);
    expect(failed.stdout).to.match(/error: set a user name first/);
    expect(failed.code).to.equal(1);

    const alice = c.client(1);
    const dave = c.client(4);
    await alice.run('u alice', /^user: alice$/);
    await alice.run('j lobby', /^--- lobby/);
    await dave.run('u dave', /^user: dave$/);
    await dave.run('j lobby', /^--- lobby/);
    alice.send('a before the partition');
    await dave.waitFor(/1\. alice: before the partition/);

    // Partition: each side keeps chatting and sees its own view.
    expect(await c.tool('cluster', 'partition', '1,2', '3,4,5')).to.match(/server 1: hears \{1,2\}[\s\S]*server 5: hears \{3,4,5\}/);
    await waitUntil(async () => {
      const rows = await status();
      return rows[0].status!.view.length === 2 && rows[3].status!.view.length === 3;
    }, 10_000, 'views split');
    expect(alice.lines[await alice.run('v', /^view of server 1: /)]).to.equal('view of server 1: 1, 2');
    alice.send('a from the left side');
    dave.send('a from the right side');
    await alice.waitFor(/alice: from the left side/);
    await dave.waitFor(/dave: from the right side/);
    expect(dave.lines.some((l) => l.includes('from the left side'))).to.equal(false);

    // Heal: one merged history, identical digests on all five within a few seconds.
    expect(await c.tool('cluster', 'heal')).to.match(/Healed/);
    await waitUntil(() => agree(), 10_000, 'identical digests after the heal');
    await alice.run('p', /^--- lobby .* 3 messages ---$/);
    await dave.run('p', /^--- lobby .* 3 messages ---$/);
    expect(alice.lastScreen()).to.deep.equal(dave.lastScreen());

    // Kill and relaunch: the relaunched server catches up.
    expect(await c.tool('cluster', 'kill', '3')).to.match(/Killed server 3/);
    alice.send('a while 3 is down');
    await dave.waitFor(/alice: while 3 is down/);
    expect(await c.tool('cluster', 'relaunch', '3')).to.match(/Relaunched server 3/);
    await waitUntil(() => agree(), 10_000, 'server 3 caught up');

    // 30% loss between servers 1 and 4 still delivers everything.
    expect(await c.tool('cluster', 'loss', '1', '4', '30%')).to.match(/server 1 -> 4: dropping 30% of datagrams[\s\S]*server 4 -> 1: dropping 30%/);
    for (let i = 0; i < 20; i++) {
      alice.send(`a lossy ${i}`);
      dave.send(`a lossy reply ${i}`);
    }
    await waitUntil(async () => {
      const rows = await status();
      return rows.every((r) => r.status && r.status.seqVector.every((seq, i) => seq === rows[0].status!.seqVector[i])) && (await agree());
    }, 20_000, 'everything delivered despite the loss');
    const rows = await status();
    expect(rows[0].status!.transport.datagramsOut).to.be.greaterThan(0);
    await alice.run('p', /^--- lobby .* 44 messages ---$/);
    await c.tool('cluster', 'heal');

    // A stopped daemon's log files show the state it had.
    const before = (await status())[1].status!;
    expect(await c.tool('cluster', 'kill', '2')).to.match(/Killed server 2/);
    const inspected = JSON.parse(await c.tool('inspect', '2', '--json')) as { digest: string; seqVector: number[]; chat: { groups: Record<string, { messages: unknown[] }> } };
    expect(inspected.digest).to.equal(before.digest);
    expect(inspected.seqVector).to.deep.equal(before.seqVector);
    expect(inspected.chat.groups.lobby.messages).to.have.length(44);
    expect(await c.tool('inspect', '2', '--diff', '1')).to.match(/^servers 2 and 1 agree/);
    // Once they differ, --diff says where and exits 1.
    alice.send('a while 2 is down');
    await dave.waitFor(/alice: while 2 is down/);
    await waitUntil(async () => (await c.toolRun('inspect', '2', '--diff', '1')).code === 1, 10_000, 'server 1 saved the new message');
    expect((await c.toolRun('inspect', '2', '--diff', '1')).stdout).to.match(/seq vector|messages|chat/);
    const shown = await c.tool('inspect', '2');
    expect(shown).to.match(/chat state \(digest \d+:[0-9a-f]{16}\):\n {4}group /);
    expect(shown).to.match(/\n {4}group lobby: /);
    // make stop: the daemons and the console.
    const consoleProcess = consolePid(c.paths);
    expect(consoleProcess).to.be.a('number');
    expect(await c.tool('cluster', 'stop')).to.match(/Stopped 4 daemons\.\nStopped the console\./);
    expect(processAlive(consoleProcess as number)).to.equal(false);
  });
});
