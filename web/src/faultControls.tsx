/**
 * Faults from the page: partition (groups typed as for tools/cluster, e.g.
 * "1,2 3,4,5"), loss between two servers, heal. Kill and relaunch are on
 * each server's row. Each calls the console server, which runs the same
 * code as tools/cluster; the answer or the error is shown here.
 */
import { useState } from 'preact/hooks';
import type { ClusterPicture } from '../../src/console/api.js';
import type { ConsoleState } from './consoleLink.js';

/** "1,2 3,4,5" -> [[1,2],[3,4,5]], or an error in the words of tools/cluster. */
export function parseGroups(text: string): number[][] {
  const groups = text.trim().split(/\s+/).filter((g) => g !== '');
  if (groups.length === 0) throw new Error('name the groups, like 1,2 3,4,5');
  return groups.map((g) => {
    if (!/^\d+(,\d+)*$/.test(g)) throw new Error(`"${g}" is not a list of server numbers like 1,2`);
    return g.split(',').map(Number);
  });
}

export function FaultControls({ state, picture, report }: { state: ConsoleState; picture: ClusterPicture; report: (text: string, isError: boolean) => void }) {
  const ids = picture.servers.map((s) => s.id);
  const [groups, setGroups] = useState('1,2 3,4,5');
  const [from, setFrom] = useState(ids[0] ?? 1);
  const [to, setTo] = useState(ids[1] ?? 2);
  const [percent, setPercent] = useState('30');
  const [oneway, setOneway] = useState(false);

  const run = (action: () => Promise<{ text: string }>) => {
    action().then(
      (r) => report(r.text, false),
      (err: Error) => report(err.message, true),
    );
  };
  const partition = () => {
    let parsed: number[][];
    try {
      parsed = parseGroups(groups);
    } catch (err) {
      return report((err as Error).message, true);
    }
    run(() => state.call('partition', { groups: parsed }));
  };
  const loss = () => {
    const value = Number(percent.replace(/%$/, ''));
    if (!(value >= 0 && value <= 100) || percent.trim() === '') return report(`loss "${percent}" is not a percentage from 0 to 100`, true);
    run(() => state.call('loss', { from, to, percent: value, oneway }));
  };
  const serverSelect = (value: number, set: (v: number) => void, name: string) => (
    <select value={value} onChange={(e) => set(Number(e.currentTarget.value))} data-input={name}>
      {ids.map((id) => (
        <option key={id} value={id}>
          {id}
        </option>
      ))}
    </select>
  );

  return (
    <div class="faults">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          partition();
        }}
      >
        <label>
          partition <input value={groups} onInput={(e) => setGroups(e.currentTarget.value)} size={14} data-input="groups" title="groups of servers that hear each other; servers not named are isolated" />
        </label>
        <button type="submit" data-action="partition">
          partition
        </button>
      </form>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          loss();
        }}
      >
        loss {serverSelect(from, setFrom, 'loss-from')} {oneway ? '->' : '<->'} {serverSelect(to, setTo, 'loss-to')}
        <input value={percent} onInput={(e) => setPercent(e.currentTarget.value)} size={4} data-input="loss-percent" />%
        <label>
          <input type="checkbox" checked={oneway} onChange={(e) => setOneway(e.currentTarget.checked)} data-input="loss-oneway" /> one-way
        </label>
        <button type="submit" data-action="loss">
          set loss
        </button>
      </form>
      <button class="heal" onClick={() => run(() => state.call('heal', {}))} data-action="heal">
        heal everything
      </button>
    </div>
  );
}
