#!/usr/bin/env node
/** tools/layers: check that src/ imports only go down its layers and form no cycle. */
import { usageFailure } from '../commandLine.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { checkLayers, layerOf, layers, readImportGraph } from './layering.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const argv = yargs(hideBin(process.argv))
  .scriptName('tools/layers')
  .usage('$0 [--src <dir>]\n\nList the layers of the source tree, lowest first, and check that every import goes down a layer (or stays in its own) and that no imports form a cycle. Exits 1 on a violation.')
  .option('src', { type: 'string', default: join(repoRoot, 'src'), describe: 'the source tree to check' })
  .strict()
  .help()
  .alias('help', 'h')
  .fail(usageFailure('tools/layers'))
  .parseSync();

const graph = readImportGraph(argv.src);
layers.forEach((names, i) => {
  const files = [...graph.keys()].filter((file) => layerOf(file) === i);
  const imports = files.reduce((sum, file) => sum + (graph.get(file)?.length ?? 0), 0);
  console.log(`layer ${i}: ${names.join(', ').padEnd(28)} ${String(files.length).padStart(3)} files, ${String(imports).padStart(3)} imports`);
});
const violations = checkLayers(graph);
for (const v of violations) console.log(`${v.kind}: ${v.detail}`);
const edges = [...graph.values()].reduce((sum, targets) => sum + targets.length, 0);
console.log(violations.length === 0 ? `${graph.size} files, ${edges} imports: every import goes down, no cycles` : `${violations.length} violations`);
process.exit(violations.length === 0 ? 0 : 1);
