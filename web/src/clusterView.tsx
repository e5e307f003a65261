/**
 * The cluster picture: servers on a circle, each link as two half-lines (one
 * per direction: green up, red cut, orange lossy with its share, grey when an
 * end is down), and the digest agreement; below it, each server's figures.
 */
import type { ClusterPicture, Direction, Link, ServerCard } from '../../src/console/api.js';
import { digestColor, partitionText } from './pictureText.js';

const width = 400;
const height = 380;
/** The circle's centre sits a little low: a pentagon is taller above its centre than below. */
const centre = { x: width / 2, y: height / 2 + 14 };
const radius = 122;
const nodeRadius = 26;

/** Where server `index` of `count` sits on the circle, or at `distance` from the centre in its direction (its note, outside the links). */
function position(index: number, count: number, distance = radius): { x: number; y: number } {
  const angle = -Math.PI / 2 + (2 * Math.PI * index) / count;
  return { x: centre.x + distance * Math.cos(angle), y: centre.y + distance * Math.sin(angle) };
}

const directionColor: Record<Direction['state'], string> = { up: '#2e9e44', cut: '#d33', lossy: '#e69500', down: '#bbb' };

function directionTitle(from: number, to: number, d: Direction): string {
  if (d.state === 'lossy') return `${from} -> ${to}: ${Math.round(d.loss * 100)}% of datagrams dropped`;
  return `${from} -> ${to}: ${d.state === 'down' ? 'an end is down' : d.state}`;
}

/** One direction of a link, drawn on its own side of the line between the two servers. */
function HalfLink({ from, to, ids, d, count }: { from: number; to: number; ids: number[]; d: Direction; count: number }) {
  const a = position(ids.indexOf(from), count);
  const b = position(ids.indexOf(to), count);
  const length = Math.hypot(b.x - a.x, b.y - a.y);
  const nx = ((b.y - a.y) / length) * 3;
  const ny = (-(b.x - a.x) / length) * 3;
  const mid = { x: (a.x + b.x) / 2 + nx * 4, y: (a.y + b.y) / 2 + ny * 4 };
  return (
    <g data-link={`${from}-${to}`} data-state={d.state}>
      <title>{directionTitle(from, to, d)}</title>
      <line x1={a.x + nx} y1={a.y + ny} x2={b.x + nx} y2={b.y + ny} stroke={directionColor[d.state]} stroke-width={d.state === 'up' ? 2.5 : 2} stroke-dasharray={d.state === 'cut' ? '6 5' : d.state === 'down' ? '2 4' : undefined} />
      {d.state === 'lossy' && (
        <text x={mid.x} y={mid.y} class="link-label">
          {Math.round(d.loss * 100)}%
        </text>
      )}
    </g>
  );
}

function linkViews(link: Link, ids: number[], count: number) {
  return [
    <HalfLink key={`${link.a}-${link.b}`} from={link.a} to={link.b} ids={ids} d={link.aToB} count={count} />,
    <HalfLink key={`${link.b}-${link.a}`} from={link.b} to={link.a} ids={ids} d={link.bToA} count={count} />,
  ];
}

function Node({ card, index, count, picture }: { card: ServerCard; index: number; count: number; picture: ClusterPicture }) {
  const { x, y } = position(index, count);
  const note = position(index, count, radius + nodeRadius + 18);
  const fill = card.state === 'down' ? '#eee' : card.state === 'storage failed' ? '#f4c7c7' : digestColor(picture, card.id);
  return (
    <g data-server={card.id} data-state={card.state}>
      <title>{card.state === 'down' ? `server ${card.id}: down` : `server ${card.id}: ${card.state}, digest ${card.digest}`}</title>
      <circle cx={x} cy={y} r={nodeRadius} fill={fill} stroke={card.state === 'down' ? '#999' : '#333'} stroke-width={2} stroke-dasharray={card.state === 'down' ? '4 3' : undefined} />
      <text x={x} y={y + 6} class="node-label">
        {card.id}
      </text>
      <text x={note.x} y={note.y + 4} class="node-note">
        {card.state === 'down' ? 'down' : card.state === 'storage failed' ? 'storage failed' : `${card.tentative} tentative`}
      </text>
    </g>
  );
}

export function ClusterDiagram({ picture }: { picture: ClusterPicture }) {
  const ids = picture.servers.map((s) => s.id);
  const count = ids.length;
  return (
    <svg class="diagram" viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label="servers and links">
      {picture.links.flatMap((link) => linkViews(link, ids, count))}
      {picture.servers.map((card, i) => (
        <Node key={card.id} card={card} index={i} count={count} picture={picture} />
      ))}
    </svg>
  );
}

export function DigestBanner({ picture }: { picture: ClusterPicture }) {
  const digestOf = (id: number): string => {
    const card = picture.servers.find((s) => s.id === id);
    return card && card.state !== 'down' ? card.digest : '';
  };
  const groups = picture.digestGroups.map((g) => `{${g.join(',')}} ${digestOf(g[0])}`);
  return (
    <div class={`banner ${picture.converged ? 'converged' : 'diverged'}`} data-testid="digest" data-converged={String(picture.converged)} data-digest-groups={String(picture.digestGroups.length)}>
      {picture.digestGroups.length === 0 ? 'no server is up' : picture.converged ? `converged: one digest at ${groups[0]}` : `${picture.digestGroups.length} digests: ${groups.join('  ·  ')}`}
      <span class="partition" data-testid="partition">
        {partitionText(picture)}
      </span>
    </div>
  );
}

function dropped(card: ServerCard): string {
  if (card.state === 'down') return '';
  const entries = Object.entries(card.dropped);
  return entries.length === 0 ? '0' : entries.map(([reason, n]) => `${reason} ${n}`).join(', ');
}

export function ServerTable({ picture, onKill, onRelaunch }: { picture: ClusterPicture; onKill: (id: number) => void; onRelaunch: (id: number) => void }) {
  return (
    <table class="servers" data-testid="servers">
      <thead>
        <tr>
          <th>id</th>
          <th>state</th>
          <th>view</th>
          <th>seq vector</th>
          <th>clock</th>
          <th>stable ts</th>
          <th>tentative / retained</th>
          <th>digest</th>
          <th>dropped datagrams</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {picture.servers.map((card) => (
          <tr key={card.id} data-server-row={card.id} data-state={card.state} class={card.state === 'down' ? 'down' : ''}>
            <td>{card.id}</td>
            <td title={card.state === 'storage failed' ? card.storageError : undefined}>{card.state === 'down' ? 'down' : `${card.state} (pid ${card.pid})`}</td>
            {card.state === 'down' ? (
              <td colSpan={7} class="muted">
                not running; its log files are kept ({card.clientAddress})
              </td>
            ) : (
              <>
                <td>{`{${card.view.join(',')}}`}</td>
                <td>{`[${card.seqVector.join(',')}]`}</td>
                <td>{card.clock}</td>
                <td>{card.stableTs}</td>
                <td>{`${card.tentative} / ${card.retained}`}</td>
                <td class="digest">{card.digest}</td>
                <td class={card.badDatagrams > 0 ? 'bad' : ''}>{dropped(card)}</td>
              </>
            )}
            <td>
              {card.state === 'down' ? (
                <button onClick={() => onRelaunch(card.id)} data-action={`relaunch-${card.id}`}>
                  relaunch
                </button>
              ) : (
                <button onClick={() => onKill(card.id)} data-action={`kill-${card.id}`}>
                  kill
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
