/**
 * The page's connection to the console server (/api): the latest cluster
 * picture and timeline as they are pushed, and the fault operations. It
 * reconnects by itself when the console restarts.
 */
import { useEffect, useState } from 'preact/hooks';
import type { ClusterPicture, ConsoleMethod, ConsoleMethods, Timeline } from '../../src/console/api.js';
import { apiPath } from '../../src/console/api.js';
import { RpcSocket } from './rpcSocket.js';

export interface ConsoleState {
  readonly connected: boolean;
  readonly picture: ClusterPicture | undefined;
  readonly timeline: Timeline;
  call<M extends ConsoleMethod>(method: M, params: ConsoleMethods[M]['params']): Promise<ConsoleMethods[M]['result']>;
}

const reconnectMs = 1000;

export function useConsole(): ConsoleState {
  const [socket, setSocket] = useState<RpcSocket | undefined>(undefined);
  const [picture, setPicture] = useState<ClusterPicture | undefined>(undefined);
  const [timeline, setTimeline] = useState<Timeline>({ events: [], samples: [] });

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const open = () => {
      RpcSocket.connect(apiPath, {
        notification(method, params) {
          if (method === 'picture') setPicture(params as ClusterPicture);
          if (method === 'timeline') setTimeline(params as Timeline);
        },
        close() {
          setSocket(undefined);
          if (!stopped) timer = setTimeout(open, reconnectMs);
        },
      }).then(
        (s) => (stopped ? s.close() : setSocket(s)),
        () => {
          if (!stopped) timer = setTimeout(open, reconnectMs);
        },
      );
    };
    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  return {
    connected: socket !== undefined,
    picture,
    timeline,
    call: (method, params) => {
      if (!socket) return Promise.reject(new Error('not connected to the console server'));
      return socket.call(method, params);
    },
  };
}
