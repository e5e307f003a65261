/** Free ports for test and benchmark clusters, so they never collide with a running cluster or each other. */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports are drawn from below the kernel's ephemeral range. A port the kernel
 * hands out itself (bind to 0) can be handed out again a moment later as the
 * local end of an outgoing connection, and a client polling a daemon that is
 * not listening yet can even connect to itself on the daemon's port; either
 * way the daemon then cannot bind it.
 */
const lowestPort = 10_000;

function ephemeralRangeStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > lowestPort + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

async function udpFree(port: number): Promise<boolean> {
  const udp = createSocket('udp4');
  const ok = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(false));
    udp.bind(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => udp.close(() => resolve()));
  return ok;
}

async function tcpFree(port: number): Promise<boolean> {
  const tcp = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    tcp.once('error', () => resolve(false));
    tcp.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  return ok;
}

/** `count` distinct ports that are free for both UDP and TCP on 127.0.0.1 right now. */
export async function freePorts(count: number): Promise<number[]> {
  const end = ephemeralRangeStart();
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 10_000) throw new Error(`found only ${ports.length} of ${count} free ports between ${lowestPort} and ${end}`);
    const port = lowestPort + Math.floor(Math.random() * (end - lowestPort));
    if (ports.includes(port)) continue;
    if ((await udpFree(port)) && (await tcpFree(port))) ports.push(port);
  }
  return ports;
}
