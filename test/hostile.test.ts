/**
 * Hostile input against real daemon processes: forged, truncated, replayed,
 * oversized and foreign datagrams are counted by reason and ignored while
 * the cluster keeps serving; the control endpoint wants the cluster key; a
 * daemon without a key refuses to start unless told --insecure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import WebSocket from 'ws';
import { ErrorAnswer } from '../src/client/calls.js';
import { ChorusConnection } from '../src/client/connection.js';
import { loadClusterKey } from '../src/config/clusterKey.js';
import type { ServerStatus } from '../src/daemon/controlServer.js';
import { controlFileName, controlTokenHeader, type ControlInfo } from '../src/daemon/controlServer.js';
import { clusterKeyFile, controlCall, daemonLogFile, serverDir } from '../src/tools/clusterProcesses.js';
import type { DropReason } from '../src/transport/udpTransport.js';
import { encodePacket } from '../src/wire/codec.js';
import { seal, wireVersion, type EnvelopeHeader } from '../src/wire/envelope.js';
import { freePorts } from '../src/tools/freePorts.js';
import { ProcessCluster, waitUntil } from './support/processCluster.js';

const daemonMain = join(process.cwd(), 'dist/src/daemon/main.js');

describe('hostile input against real daemons', function () {
  this.timeout(120_000);
  let cluster: ProcessCluster | undefined;
  let socket: Socket | undefined;

  afterEach(async () => {
    socket?.close();
    socket = undefined;
    await cluster?.destroy();
    cluster = undefined;
  });

  const status = async (id: number): Promise<ServerStatus> => {
    const s = await controlCall(cluster!.paths, id, 'status');
    if (!s) throw new Error(`server ${id} does not answer`);
    return s;
  };
  const send = (id: number, datagram: Buffer) => {
    const server = cluster!.config.servers[id - 1];
    return new Promise<void>((resolve, reject) => socket!.send(datagram, server.udpPort, server.host, (err) => (err ? reject(err) : resolve())));
  };

  it('counts and ignores forged, truncated, oversized, foreign and replayed datagrams, and keeps serving', async () => {
    cluster = await ProcessCluster.create(3);
    await cluster.startAll();
    socket = createSocket('udp4');
    const key = loadClusterKey(clusterKeyFile(cluster.paths));
    await waitUntil(async () => (await status(1)).view.length === 3, 10_000, 'one view of three');
    const [one, two] = [await status(1), await status(2)];
    const header = (h: Partial<EnvelopeHeader>): EnvelopeHeader => ({
      from: 2,
      to: 1,
      fromIncarnation: two.incarnation,
      toIncarnation: one.incarnation,
      counter: 2 ** 40,
      ...h,
    });
    // What server 2 could have said: its own status, as if captured on the wire. (Its high counter
    // makes server 1 refuse server 2's real, lower-numbered datagrams as too old from then on;
    // only a holder of the key can make such a datagram, and server 2 is about to crash anyway.)
    const statusOfTwo = encodePacket({ type: 'status', from: 2, seqVector: [...two.seqVector], tsVector: [...two.tsVector] });
    const captured = seal(key, header({}), statusOfTwo);
    const wrongVersion = Buffer.from(captured);
    wrongVersion[0] = wireVersion + 7;
    const dropsBefore = one.transport.dropped;

    await send(1, seal(Buffer.alloc(32, 1), header({ counter: 5 }), statusOfTwo));
    await send(1, captured.subarray(0, 30));
    await send(1, Buffer.concat([captured, Buffer.alloc(40_000)]));
    await send(1, wrongVersion);
    await send(1, seal(key, header({ from: 9 }), statusOfTwo));
    await send(1, seal(key, header({ to: 3 }), statusOfTwo));
    await send(1, Buffer.from('{"f":2,"s":[9,9,9],"t":[9,9,9]}'));
    await send(1, captured);
    const expected: Partial<Record<DropReason, number>> = { 'auth-failed': 1, 'too-short': 2, oversized: 1, 'wrong-version': 1, 'unknown-sender': 1, misdirected: 1 };
    const counted = async () => {
      const dropped = (await status(1)).transport.dropped;
      return Object.entries(expected).every(([reason, n]) => dropped[reason as DropReason] - dropsBefore[reason as DropReason] === n);
    };
    let last: unknown;
    await waitUntil(async () => { last = (await status(1)).transport.dropped; return counted(); }, 10_000, () => `every bad datagram counted by its reason: ${JSON.stringify(last)} before ${JSON.stringify(dropsBefore)}`);

    // Server 2 crashes; server 1 notices. A replay of its captured datagram changes nothing.
    cluster.kill(2);
    await waitUntil(async () => !(await status(1)).view.includes(2), 10_000, 'server 2 out of the view of server 1');
    const beforeReplay = await status(1);
    await send(1, captured);
    await send(1, seal(key, header({ fromIncarnation: two.incarnation - 1, counter: 2 ** 41 }), statusOfTwo));
    await send(1, seal(key, header({ toIncarnation: one.incarnation - 1, counter: 2 ** 41 }), statusOfTwo));
    await waitUntil(async () => (await status(1)).transport.dropped.replayed === beforeReplay.transport.dropped.replayed + 2, 10_000, 'two replays counted');
    await waitUntil(async () => (await status(1)).transport.dropped.stale === beforeReplay.transport.dropped.stale + 1, 10_000, 'one stale datagram counted');
    await new Promise((r) => setTimeout(r, 300));
    const afterReplay = await status(1);
    expect(afterReplay.view, 'a replayed heartbeat does not bring server 2 back').to.deep.equal([1, 3]);
    expect(afterReplay.seqMatrix[1]).to.deep.equal(beforeReplay.seqMatrix[1]);

    // Still serving: an append through server 1 reaches server 3.
    const alice = cluster.client(1);
    await alice.waitFor(/^connected to /);
    await alice.run('u alice', /^user: alice$/);
    await alice.run('j room', /^--- room/);
    await alice.run('a still here', /alice: still here/);
    const carol = cluster.client(3);
    await carol.waitFor(/^connected to /);
    await carol.run('u carol', /^user: carol$/);
    await carol.run('j room', /alice: still here/);

    const table = await cluster.tool('cluster', 'status');
    expect(table).to.match(/server 1 BAD DATAGRAMS dropped \(a misconfigured or hostile sender\): auth-failed 1, unknown-sender 1, misdirected 1, oversized 1, too-short 2, wrong-version 1, replayed \d+\n/);
    // Stale datagrams (addressed to an earlier run) are normal after a restart: counted, not called bad.
    expect(table).not.to.match(/stale/);
    const log = readFileSync(daemonLogFile(cluster.paths, 1), 'utf8');
    expect(log).to.match(/warn: dropped a datagram from 127\.0\.0\.1:\d+: auth-failed \(the MAC does not match the cluster key\)/);
  });

  it('the control endpoint answers only those who hold the cluster key', async () => {
    cluster = await ProcessCluster.create(3);
    await cluster.start(1);
    const info = JSON.parse(readFileSync(join(serverDir(cluster.paths, 1), controlFileName), 'utf8')) as ControlInfo;
    const refused = async (headers: Record<string, string>) => {
      try {
        await ChorusConnection.connect(`127.0.0.1:${info.port}`, 2000, headers);
        return 'accepted';
      } catch (err) {
        return (err as ErrorAnswer).message;
      }
    };
    expect(await refused({})).to.match(/refused the connection: 401 the control token does not match this cluster key/);
    expect(await refused({ [controlTokenHeader]: 'f'.repeat(64) })).to.match(/401/);
    const ws = new WebSocket(`ws://127.0.0.1:${info.port}`);
    ws.on('error', () => undefined);
    const status = await new Promise<number>((resolve) => ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    ws.terminate();
    expect(status).to.equal(401);
    expect(await controlCall(cluster.paths, 1, 'status')).to.have.property('id', 1);
    // The digest (messages in the order, hash chain): computed unless a tool says it does not need it.
    expect((await controlCall(cluster.paths, 1, 'status'))!.digest).to.match(/^\d+:[0-9a-f]{16}$/);
    expect((await controlCall(cluster.paths, 1, 'status', { digest: false }))!.digest).to.equal('');

    // A tool holding another key is told so.
    writeFileSync(clusterKeyFile(cluster.paths), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const err = await controlCall(cluster.paths, 1, 'status').catch((e: Error) => e);
    expect((err as Error).message).to.match(/server 1 does not accept the cluster key in .*cluster\.key/);
  });

  it('a daemon without a cluster key refuses to start, unless told --insecure', async () => {
    const root = mkdtempSync(join(tmpdir(), 'chorus-nokey-'));
    const config = join(root, 'clusterconfig');
    const ports = await freePorts(6);
    writeFileSync(config, [0, 2, 4].map((i) => `127.0.0.1 ${ports[i]} ${ports[i + 1]}\n`).join(''));
    const started: ChildProcess[] = [];
    const run = (args: string[]) => {
      const child = spawn(process.execPath, [daemonMain, '--id', '1', '--config', config, '--data-dir', join(root, 'server1'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      started.push(child);
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      // Bounded, so that the clean-up below runs even if a daemon that should refuse to start does not.
      const exited = new Promise<number | null | 'still running'>((resolve) => {
        child.on('exit', resolve);
        setTimeout(() => resolve('still running'), 15_000).unref();
      });
      return { child, output: () => output, exited };
    };
    try {
      const noKey = run([]);
      expect(await noKey.exited).to.equal(2);
      expect(noKey.output()).to.match(/chorusd: .*cluster\.key: no cluster key; create one with tools\/cluster keygen \(make run does\), or run with --insecure/);

      writeFileSync(join(root, 'cluster.key'), `${'cd'.repeat(32)}\n`, { mode: 0o644 });
      const readable = run([]);
      expect(await readable.exited).to.equal(2);
      expect(readable.output()).to.match(/readable by others \(mode 644\); run chmod 600/);

      const insecure = run(['--insecure']);
      await waitUntil(() => /started server 1/.test(insecure.output()), 10_000, 'the insecure daemon starts');
      expect(insecure.output()).to.match(/WARNING: RUNNING WITHOUT A CLUSTER KEY \(--insecure\)/);
    } finally {
      // Whatever failed (a daemon that started when it should have refused, say), none is left running.
      for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(root, { recursive: true, force: true });
    }
  });
});
