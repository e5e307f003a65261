/** Free ports for test and benchmark clusters, so they never collide with a running cluster or each other. */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

/** `count` distinct ports that are free for both UDP and TCP on 127.0.0.1 right now. */
export async function freePorts(count: number): Promise<number[]> {
  const held: (Socket | Server)[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const udp = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, '127.0.0.1', () => resolve());
      });
      held.push(udp);
      const port = udp.address().port;
      const tcp = createServer();
      const ok = await new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(false));
        tcp.listen(port, '127.0.0.1', () => resolve(true));
      });
      if (ok) {
        held.push(tcp);
        ports.push(port);
      }
    }
    return ports;
  } finally {
    for (const h of held) h.close();
  }
}
