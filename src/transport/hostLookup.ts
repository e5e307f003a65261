/**
 * Where the UDP socket sends: an address as it is, at once; a host name
 * through dns.lookup, its address then kept for a while. Node's own lookup
 * resolves the destination of every datagram anew: getaddrinfo on the
 * thread pool for a name (a datagram to "localhost" cost 37-43 µs of CPU
 * here, against 7-8 with the name's address kept), and a callback deferred
 * to the next tick even for an address.
 */
import { lookup as dnsLookup } from 'node:dns';
import { isIPv4 } from 'node:net';

/** How long a name's address is used before the name is looked up again (a host that moves is found again within this). */
export const hostAddressMs = 30_000;

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string, family: number) => void;

/** A lookup function for dgram.createSocket({ lookup }) (IPv4, as the socket is). `now` is in ms. */
export function keptAddressLookup(now: () => number = () => performance.now()): (host: string, family: unknown, callback: LookupCallback) => void {
  const kept = new Map<string, { readonly address: string; readonly at: number }>();
  return (host, _family, callback) => {
    if (isIPv4(host)) return callback(null, host, 4);
    const known = kept.get(host);
    if (known && now() - known.at < hostAddressMs) return callback(null, known.address, 4);
    dnsLookup(host, { family: 4 }, (error, address) => {
      if (!error) kept.set(host, { address, at: now() });
      callback(error, address, 4);
    });
  };
}
