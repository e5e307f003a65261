/**
 * One open control connection per server, kept between polls (the console
 * asks every server for its status four times a second). A connection that
 * fails or does not answer in time is dropped and opened again on the next
 * poll: a relaunched daemon has a new control port.
 */
import type { ChorusConnection } from '../client/connection.js';
import type { ControlMethods, ServerStatus } from '../daemon/controlServer.js';
import { connectControl, type LocalClusterPaths } from '../tools/clusterProcesses.js';

/** A status call that takes longer counts as no answer (a stopped or overloaded daemon). */
export const statusTimeoutMs = 1500;

export class ControlLinks {
  private readonly links = new Map<number, ChorusConnection<ControlMethods>>();

  constructor(private readonly paths: LocalClusterPaths) {}

  /** Server id's status, or undefined if it does not answer. */
  async status(id: number): Promise<ServerStatus | undefined> {
    try {
      const link = await this.link(id);
      if (!link) return undefined;
      return await withTimeout(link.call('status', { digest: true }), statusTimeoutMs);
    } catch {
      this.drop(id);
      return undefined;
    }
  }

  close(): void {
    for (const id of [...this.links.keys()]) this.drop(id);
  }

  private async link(id: number): Promise<ChorusConnection<ControlMethods> | undefined> {
    const open = this.links.get(id);
    if (open?.connected) return open;
    this.drop(id);
    const fresh = await connectControl(this.paths, id, statusTimeoutMs);
    if (fresh) this.links.set(id, fresh);
    return fresh;
  }

  private drop(id: number): void {
    this.links.get(id)?.close();
    this.links.delete(id);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
