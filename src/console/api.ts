/**
 * What the console's server and its web page say to each other: JSON-RPC
 * 2.0 over one WebSocket at /api. The server pushes the cluster picture
 * (notification `picture`) whenever it polls the daemons, and the timeline
 * (notification `timeline`) when it changes; the page calls the fault
 * methods. Types only: the page (web/) imports them too.
 */
import type { FaultSettings } from '../transport/faults.js';

/** One direction of a link: what happens to a datagram from one server to another. */
export type Direction = { readonly state: 'up' } | { readonly state: 'cut' } | { readonly state: 'lossy'; readonly loss: number } | { readonly state: 'down' };

/** A pair of servers, a < b: each direction drawn as it is. */
export interface Link {
  readonly a: number;
  readonly b: number;
  readonly aToB: Direction;
  readonly bToA: Direction;
}

/** A running server, as its control endpoint reports it. */
export interface ServerUp {
  readonly id: number;
  readonly state: 'up' | 'storage failed';
  readonly pid: number;
  readonly view: readonly number[];
  readonly seqVector: readonly number[];
  readonly clock: number;
  readonly stableTs: number;
  readonly tentative: number;
  readonly retained: number;
  readonly digest: string;
  /** Datagrams dropped by reason (only reasons with a count). */
  readonly dropped: Readonly<Record<string, number>>;
  /** Of those, the ones a healthy cluster never sees (forged, wrong version, ...). */
  readonly badDatagrams: number;
  readonly faults: FaultSettings;
  readonly storageError?: string;
  readonly clientAddress: string;
}

export interface ServerDown {
  readonly id: number;
  readonly state: 'down';
  readonly clientAddress: string;
}

export type ServerCard = ServerUp | ServerDown;

export interface ClusterPicture {
  /** Milliseconds since the epoch, when the console read it. */
  readonly at: number;
  readonly servers: readonly ServerCard[];
  readonly links: readonly Link[];
  /** Servers up, grouped by digest (one group: converged). */
  readonly digestGroups: readonly (readonly number[])[];
  readonly converged: boolean;
  /** Servers up, grouped by which hear each other (through links up or lossy both ways): one group when nothing is cut. */
  readonly sides: readonly (readonly number[])[];
  /** Where faults are made: inside the daemons (the loopback cluster) or by nftables rules in each server's namespace (tools/cluster start --netns). */
  readonly faultsMadeBy: 'daemons' | 'nftables';
  /** Links cut in one direction only. */
  readonly oneWayCuts: readonly { readonly from: number; readonly to: number }[];
}

export type EventKind = 'fault' | 'view' | 'converged' | 'server' | 'error';

/** A line of the event strip. */
export interface ConsoleEvent {
  readonly at: number;
  readonly kind: EventKind;
  readonly text: string;
}

/** One point of the charts, per server (null while down). */
export interface Sample {
  readonly at: number;
  /** Messages ordered per second since the previous sample (the sum of the seq vector). */
  readonly throughput: readonly (number | null)[];
  /** Messages not yet stable. */
  readonly tentative: readonly (number | null)[];
}

export interface Timeline {
  readonly events: readonly ConsoleEvent[];
  readonly samples: readonly Sample[];
}

/** Fault operations the page may call: the same as tools/cluster's commands. */
export interface ConsoleMethods {
  partition: { params: { groups: number[][] }; result: { text: string } };
  loss: { params: { from: number; to: number; percent: number; oneway: boolean }; result: { text: string } };
  kill: { params: { id: number }; result: { text: string } };
  relaunch: { params: { id: number }; result: { text: string } };
  heal: { params: Record<string, never>; result: { text: string } };
}

export type ConsoleMethod = keyof ConsoleMethods;

/** The page's chat pane talks to server <id>'s client port through the console: ws://<console>/chat/<id>. */
export const chatPathPrefix = '/chat/';
export const apiPath = '/api';

/** WebSocket close codes the console sends on a chat connection. */
export const chatCloseCodes = {
  /** The server closed the connection or went away (the reason says how). */
  serverGone: 4100,
  /** The server did not answer. */
  serverUnreachable: 4101,
} as const;
