/**
 * Client-port bugs planted for the simulator to catch (test/simulator.test.ts),
 * through the seams the RPC service already has: the endpoint's push parts
 * and the chat port it reads. The service and the endpoint run unchanged.
 *
 * - push-without-likes: a push does not say which earlier messages' likes
 *   changed, so a client's mirror keeps stale likes.
 * - replay-without-memory: the service never finds a request's original
 *   (the requests it remembers are hidden from it), so a repeated request is
 *   answered as a new one: with wait "stable", by a copy that is not first.
 */
import type { PushParts } from '../rpc/endpoint.js';
import type { ChatPort } from '../server/chatPort.js';

export type PlantedRpc = 'push-without-likes' | 'replay-without-memory';

export const plantedRpcs: readonly PlantedRpc[] = ['push-without-likes', 'replay-without-memory'];

/** The push parts with the planted bug, if it is one of them. */
export function plantedPushParts(plant: PlantedRpc): PushParts | undefined {
  if (plant !== 'push-without-likes') return undefined;
  return { changesSince: (service, group, base) => ({ ...service.reader.changesSince(group, base), likes: [] }) };
}

/** The port the service is given, with the planted bug if it is one of its. */
export function plantedPort(port: ChatPort, plant: PlantedRpc): ChatPort {
  if (plant !== 'replay-without-memory') return port;
  return { ...port, shown: () => ({ ...port.shown(), requests: {} }) };
}
