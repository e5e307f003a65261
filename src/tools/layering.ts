/**
 * The layers of src/, in dependency order, and the check that every import
 * goes down (or stays within its folder) and that no imports form a cycle.
 * tools/layers prints the result; test/layers.test.ts keeps it so.
 *
 * Data flows network -> engine -> node -> chat -> RPC -> clients; the code
 * depends the other way round from the protocol out: the pure engine knows
 * nothing of the wire, the node nothing of the chat, the chat nothing of RPC.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Lowest first. A file may import from its own layer's folders or lower ones. */
export const layers: readonly (readonly string[])[] = [
  ['errors.ts', 'commandLine.ts', 'jsonText.ts'],
  ['broadcast'],
  ['config', 'wire', 'storage'],
  ['transport'],
  ['node'],
  ['chat'],
  ['server'],
  ['rpc'],
  ['client'],
  ['daemon', 'sim', 'tools', 'bench', 'console'],
];

export interface Violation {
  readonly kind: 'upward import' | 'cycle' | 'unplaced file';
  readonly detail: string;
}

/** Imports per file, as paths relative to the source root (e.g. "broadcast/engine.ts"). */
export type ImportGraph = ReadonlyMap<string, readonly string[]>;

/** Read the relative imports of every .ts file under `root`. */
export function readImportGraph(root: string): ImportGraph {
  const graph = new Map<string, string[]>();
  for (const file of listTs(root)) {
    const text = readFileSync(join(root, file), 'utf8');
    const targets: string[] = [];
    for (const match of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'/gm)) {
      const spec = match[1] ?? match[2];
      targets.push(relative(root, resolve(root, dirname(file), spec.replace(/\.js$/, '.ts'))));
    }
    graph.set(file, targets);
  }
  return graph;
}

function listTs(root: string, dir = ''): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return listTs(root, path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** The layer of a file, by its top folder (or its name at the root); undefined if it has none. */
export function layerOf(file: string): number | undefined {
  const top = file.split('/')[0];
  const index = layers.findIndex((names) => names.includes(top));
  return index < 0 ? undefined : index;
}

export function checkLayers(graph: ImportGraph): Violation[] {
  const violations: Violation[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    if (from === undefined) {
      violations.push({ kind: 'unplaced file', detail: `${file} is in no layer` });
      continue;
    }
    for (const target of targets) {
      const to = layerOf(target);
      if (to !== undefined && to > from) violations.push({ kind: 'upward import', detail: `${file} (${layerName(from)}) imports ${target} (${layerName(to)})` });
    }
  }
  for (const cycle of findCycles(graph)) violations.push({ kind: 'cycle', detail: cycle.join(' -> ') });
  return violations;
}

function layerName(index: number): string {
  return layers[index].join(', ');
}

/** One cycle per strongly connected group of files found by depth-first search. */
function findCycles(graph: ImportGraph): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const target of graph.get(file) ?? []) {
      if (state.get(target) === 'open') cycles.push([...path.slice(path.indexOf(target)), target]);
      else if (!state.has(target) && graph.has(target)) visit(target);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return cycles;
}
