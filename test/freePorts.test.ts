/** Test clusters' ports: free, distinct, and never ones the kernel hands out to outgoing connections. */
import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePorts } from '../src/tools/freePorts.js';

describe('free ports for test and bench clusters', () => {
  it('are distinct, below the ephemeral range, and bindable for UDP and TCP', async () => {
    const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const ports = await freePorts(20);
    expect(new Set(ports).size).to.equal(20);
    for (const port of ports) {
      expect(port).to.be.below(ephemeralStart);
      const udp = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, '127.0.0.1', () => resolve());
      });
      const tcp = createServer();
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => resolve());
      });
      udp.close();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    }
  });
});
