/**
 * The Chorus web console: the cluster picture, faults from the page, the
 * timeline and a chat pane, live from the console server (see
 * src/console/consoleServer.ts).
 */
import 'uplot/dist/uPlot.min.css';
import './console.css';
import { render } from 'preact';
import { useState } from 'preact/hooks';
import { ChatPane } from './chatPane.js';
import { ClusterDiagram, DigestBanner, ServerTable } from './clusterView.js';
import { useConsole } from './consoleLink.js';
import { FaultControls } from './faultControls.js';
import { TimelineView } from './timelineView.js';

function App() {
  const state = useConsole();
  const [answer, setAnswer] = useState<{ text: string; error: boolean } | undefined>(undefined);
  const report = (text: string, error: boolean) => setAnswer({ text, error });
  const { picture } = state;
  const ids = picture?.servers.map((s) => s.id) ?? [];
  return (
    <main>
      <header>
        <h1>Chorus console</h1>
        <span class={`link-state ${state.connected ? 'ok' : 'lost'}`} data-testid="console-connection">
          {state.connected ? `live · ${picture ? new Date(picture.at).toLocaleTimeString([], { hour12: false }) : ''}` : 'reconnecting to the console server…'}
        </span>
      </header>
      {picture === undefined ? (
        <p>Waiting for the first picture of the cluster…</p>
      ) : (
        <div class="layout">
          <section class="cluster">
            <DigestBanner picture={picture} />
            <div class="picture-row">
              <ClusterDiagram picture={picture} />
              <div class="side">
                <FaultControls state={state} picture={picture} report={report} />
                {answer && (
                  <p class={answer.error ? 'answer error' : 'answer'} data-testid="fault-answer">
                    {answer.text}
                  </p>
                )}
                <p class="legend">
                  <span class="up">━ up</span> <span class="cut">╌ cut</span> <span class="lossy">━ lossy %</span> <span class="down">┈ end down</span> · one half-line per direction · same fill: same digest
                </p>
                <p class="legend" data-testid="faults-made-by">
                  {picture.faultsMadeBy === 'nftables' ? 'faults are nftables rules in each server\'s network namespace' : 'faults are made inside the daemons (drops where datagrams leave and enter)'}
                </p>
              </div>
            </div>
            <ServerTable picture={picture} onKill={(id) => void state.call('kill', { id }).then((r) => report(r.text, false), (e: Error) => report(e.message, true))} onRelaunch={(id) => void state.call('relaunch', { id }).then((r) => report(r.text, false), (e: Error) => report(e.message, true))} />
            <TimelineView timeline={state.timeline} serverIds={ids} />
          </section>
          <ChatPane picture={picture} />
        </div>
      )}
    </main>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
