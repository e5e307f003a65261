/**
 * The benchmark's baseline: one of N processes that send datagrams of a
 * given size to all the others as fast as the socket lets them, and count
 * what they receive. Run by tools/bench; prints one JSON line.
 */
import { createSocket } from 'node:dgram';

const [me, portsText, bytesText, durationText] = process.argv.slice(2);
const ports = portsText.split(',').map(Number);
const myPort = ports[Number(me) - 1];
const peers = ports.filter((p) => p !== myPort);
const payload = Buffer.alloc(Number(bytesText), 120);
const durationMs = Number(durationText);
const socket = createSocket('udp4');
let received = 0;
let sent = 0;
socket.on('message', () => received++);
socket.bind(myPort, '127.0.0.1', () => {
  socket.setRecvBufferSize(8 * 1024 * 1024);
  socket.setSendBufferSize(8 * 1024 * 1024);
  const end = Date.now() + durationMs;
  // Keep a bounded number of sends in flight so the event loop also reads.
  let inFlight = 0;
  const pump = () => {
    while (inFlight < 64 && Date.now() < end) {
      inFlight++;
      for (const port of peers) socket.send(payload, port, '127.0.0.1');
      sent += peers.length;
      setImmediate(() => {
        inFlight--;
        pump();
      });
    }
  };
  pump();
  setTimeout(() => {
    process.stdout.write(`${JSON.stringify({ sent, received })}\n`);
    socket.close();
    process.exit(0);
  }, durationMs + 300);
});
