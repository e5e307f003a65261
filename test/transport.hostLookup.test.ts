import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { hostAddressMs, keptAddressLookup } from '../src/transport/hostLookup.js';

/** Call the lookup; says whether it answered before returning, and with what. */
async function look(lookup: ReturnType<typeof keptAddressLookup>, host: string): Promise<{ atOnce: boolean; address: string; family: number }> {
  let returned = false;
  return new Promise((resolve, reject) => {
    lookup(host, 4, (error, address, family) => (error ? reject(error) : resolve({ atOnce: !returned, address, family })));
    returned = true;
  });
}

describe('transport: where datagrams go (host names looked up once in a while, not per datagram)', () => {
  it('an address is used as it is, at once; a name is looked up, then its address kept until the window ends', async () => {
    let now = 0;
    const lookup = keptAddressLookup(() => now);
    expect(await look(lookup, '127.0.0.1')).to.deep.equal({ atOnce: true, address: '127.0.0.1', family: 4 });
    expect(await look(lookup, 'localhost')).to.deep.equal({ atOnce: false, address: '127.0.0.1', family: 4 });
    now = hostAddressMs - 1;
    expect(await look(lookup, 'localhost')).to.deep.equal({ atOnce: true, address: '127.0.0.1', family: 4 });
    now = hostAddressMs;
    expect(await look(lookup, 'localhost')).to.deep.equal({ atOnce: false, address: '127.0.0.1', family: 4 });
  });

  it('a UDP socket with it delivers datagrams sent to a host name', async () => {
    const receiver = createSocket('udp4');
    const sender = createSocket({ type: 'udp4', lookup: keptAddressLookup() });
    try {
      await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
      const got: string[] = [];
      const all = new Promise<void>((resolve) =>
        receiver.on('message', (buf) => {
          got.push(buf.toString());
          if (got.length === 3) resolve();
        }),
      );
      for (const text of ['one', 'two', 'three']) sender.send(Buffer.from(text), receiver.address().port, 'localhost');
      await all;
      expect(got.sort()).to.deep.equal(['one', 'three', 'two']);
    } finally {
      sender.close();
      receiver.close();
    }
  });
});
