/**
 * The timeline: the event strip (faults, servers down and up, view changes,
 * convergence after a heal) and two small charts over the last minutes,
 * drawn with uPlot: messages ordered per second and tentative messages
 * (the stable lag), one line per server.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { ConsoleEvent, Sample, Timeline } from '../../src/console/api.js';

const serverColors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

function clock(at: number): string {
  const d = new Date(at);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export function EventStrip({ events }: { events: readonly ConsoleEvent[] }) {
  if (events.length === 0) return <p class="muted">No events yet: faults, servers going down and up, view changes and convergence show up here.</p>;
  return (
    <ol class="events" data-testid="events">
      {[...events].reverse().map((e, i) => (
        <li key={`${e.at}-${i}`} class={`event ${e.kind}`} data-kind={e.kind}>
          <time>{clock(e.at)}</time> <span class="kind">{e.kind}</span> {e.text}
        </li>
      ))}
    </ol>
  );
}

function chartData(samples: readonly Sample[], pick: (s: Sample) => readonly (number | null)[], servers: number): uPlot.AlignedData {
  const xs = samples.map((s) => s.at / 1000);
  const series = Array.from({ length: servers }, (_, i) => samples.map((s) => pick(s)[i] ?? null));
  return [xs, ...series];
}

export function Chart({ title, samples, pick, serverIds }: { title: string; samples: readonly Sample[]; pick: (s: Sample) => readonly (number | null)[]; serverIds: readonly number[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const data = chartData(samples, pick, serverIds.length);

  useEffect(() => {
    if (!box.current) return;
    const options: uPlot.Options = {
      title,
      width: 340,
      height: 140,
      scales: { x: { time: true } },
      legend: { show: false },
      series: [{}, ...serverIds.map((id, i) => ({ label: `server ${id}`, stroke: serverColors[i % serverColors.length], width: 1.5, spanGaps: false }))],
      axes: [{}, { size: 50 }],
    };
    plot.current = new uPlot(options, data, box.current);
    return () => plot.current?.destroy();
    // The chart is made once per set of servers; new samples go through setData below.
  }, [serverIds.join(',')]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return <div class="chart" ref={box} />;
}

export function TimelineView({ timeline, serverIds }: { timeline: Timeline; serverIds: readonly number[] }) {
  return (
    <div class="timeline">
      <p class="series-key">
        {serverIds.map((id, i) => (
          <span key={id} style={{ color: serverColors[i % serverColors.length] }}>
            ━ server {id}{' '}
          </span>
        ))}
      </p>
      <div class="charts">
        <Chart title="messages ordered per second" samples={timeline.samples} pick={(s) => s.throughput} serverIds={serverIds} />
        <Chart title="tentative messages (not yet stable)" samples={timeline.samples} pick={(s) => s.tentative} serverIds={serverIds} />
      </div>
      <EventStrip events={timeline.events} />
    </div>
  );
}
