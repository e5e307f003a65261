/**
 * The chat pane: a chat client for any server of the cluster. When its
 * server goes away it says so and moves to another server that is up (or
 * the one the user picks), carrying the user, the group and any unanswered
 * request over.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { ClusterPicture } from '../../src/console/api.js';
import type { MessageEntry } from '../../src/rpc/protocol.js';
import { ChatSession } from './chatSession.js';

/** How long the pane waits before it moves to another server: the user sees what happened first. */
const moveDelayMs = 500;
/** Attempts to find another server before the pane waits for the user to pick one. */
const maxMoveAttempts = 20;

function upServers(picture: ClusterPicture | undefined): number[] {
  return picture ? picture.servers.filter((s) => s.state === 'up').map((s) => s.id) : [];
}

export function ChatPane({ picture }: { picture: ClusterPicture | undefined }) {
  const [, redraw] = useState(0);
  const pictureRef = useRef(picture);
  pictureRef.current = picture;
  const session = useMemo(() => {
    /** Move to another server that is up; if that fails too, try the next, a while longer. */
    const moveOn = (lost: number, attempt: number): void => {
      if (attempt >= maxMoveAttempts) return;
      setTimeout(() => {
        const candidates = upServers(pictureRef.current).filter((id) => id !== lost);
        if (candidates.length === 0) return moveOn(lost, attempt + 1);
        session.connect(candidates[attempt % candidates.length]).catch(() => moveOn(lost, attempt + 1));
      }, moveDelayMs);
    };
    const session: ChatSession = new ChatSession(
      () => redraw((n) => n + 1),
      (lost) => moveOn(lost, 0),
    );
    return session;
  }, []);
  const [user, setUser] = useState('');
  const [group, setGroup] = useState('lobby');
  const [text, setText] = useState('');

  useEffect(() => {
    const first = upServers(picture)[0];
    if (session.server === undefined && first !== undefined) void session.connect(first).catch(() => undefined);
  }, [picture === undefined]);
  useEffect(() => () => session.close(), []);
  // The connected server's view changed (a partition, a heal, a crash): ask it again, as the terminal's v would.
  const serverCard = picture?.servers.find((s) => s.id === session.server);
  const serverView = serverCard && serverCard.state !== 'down' ? serverCard.view.join(',') : '';
  useEffect(() => {
    if (session.connected) void session.run(() => session.readView());
  }, [serverView]);

  const ids = picture?.servers.map((s) => s.id) ?? [];
  const stateOf = (id: number) => picture?.servers.find((s) => s.id === id)?.state ?? 'down';
  const act = (command: () => Promise<void>) => void session.run(command);
  const likeButton = (m: MessageEntry) => {
    const liked = session.user !== undefined && m.likedBy.includes(session.user);
    return (
      <button class="like" onClick={() => act(() => session.like(m, !liked))} data-action={`${liked ? 'unlike' : 'like'}-${m.n}`}>
        {liked ? 'unlike' : 'like'}
      </button>
    );
  };

  return (
    <section class="chat" data-testid="chat">
      <h2>Chat</h2>
      <div class="chat-server">
        server{' '}
        <select value={session.server ?? ''} onChange={(e) => void session.connect(Number(e.currentTarget.value)).catch(() => undefined)} data-input="chat-server">
          {ids.map((id) => (
            <option key={id} value={id}>
              {id} {stateOf(id) === 'up' ? '' : `(${stateOf(id)})`}
            </option>
          ))}
        </select>{' '}
        <span data-testid="chat-connection" data-server={session.server ?? ''} data-connected={String(session.connected)}>
          {session.connected ? `connected to server ${session.server}` : session.server === undefined ? 'not connected' : `not connected (server ${session.server})`}
        </span>
        {session.connected && <span class="muted"> · view {`{${session.view.join(',')}}`}</span>}
      </div>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          act(() => session.setUser(user));
        }}
      >
        <input placeholder="user name" value={user} onInput={(e) => setUser(e.currentTarget.value)} data-input="chat-user" size={12} />
        <button type="submit" data-action="chat-user">
          set user
        </button>{' '}
        <span data-testid="chat-user">{session.user ? `you are ${session.user}` : ''}</span>
      </form>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          act(() => session.join(group));
        }}
      >
        <input placeholder="group" value={group} onInput={(e) => setGroup(e.currentTarget.value)} data-input="chat-group" size={12} />
        <button type="submit" data-action="chat-join">
          join
        </button>
        <button type="button" onClick={() => act(() => session.leave())} data-action="chat-leave">
          leave
        </button>
        <button type="button" onClick={() => act(() => session.listGroups())} data-action="chat-groups">
          groups
        </button>
        <button type="button" onClick={() => act(() => session.readView())} data-action="chat-view">
          view
        </button>
      </form>
      {session.groups.length > 0 && (
        <ul class="group-list">
          {session.groups.map((g) => (
            <li key={g.group}>
              <a href="#" onClick={(e) => (e.preventDefault(), setGroup(g.group), act(() => session.join(g.group)))}>
                {g.group}
              </a>{' '}
              <span class="muted">
                {g.total} message{g.total === 1 ? '' : 's'}, {g.participants.join(', ') || 'nobody'}
              </span>
            </li>
          ))}
        </ul>
      )}
      {session.group !== undefined && (
        <div class="group-head" data-testid="chat-group">
          <b>{session.group}</b> · participants: {session.participants.join(', ') || '(none)'} · {session.total} message{session.total === 1 ? '' : 's'}
        </div>
      )}
      {session.messages.length > 0 && session.messages[0].n > 1 && (
        <button onClick={() => act(() => session.readEarlier())} data-action="chat-earlier">
          earlier messages
        </button>
      )}
      <ol class="messages" data-testid="messages">
        {session.messages.map((m) => (
          <li key={m.id} class={m.stable ? 'stable' : 'tentative'} data-n={m.n} data-stable={String(m.stable)}>
            <span class="n">{m.n}.</span> <b>{m.user}</b>: <span class="text">{m.text}</span>{' '}
            <span class="likes" title={m.likedBy.join(', ')}>
              [{m.likes} like{m.likes === 1 ? '' : 's'}]
            </span>
            {!m.stable && <span class="tentative-mark"> (tentative)</span>} {likeButton(m)}
          </li>
        ))}
      </ol>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const line = text;
          setText('');
          act(() => session.append(line));
        }}
      >
        <input placeholder="message" value={text} onInput={(e) => setText(e.currentTarget.value)} data-input="chat-text" size={40} />
        <button type="submit" data-action="chat-send">
          send
        </button>
      </form>
      <ol class="chat-log" data-testid="chat-log">
        {session.log.map((l, i) => (
          <li key={`${l.at}-${i}`} class={l.error ? 'error' : ''}>
            {l.error ? 'error: ' : ''}
            {l.text}
          </li>
        ))}
      </ol>
    </section>
  );
}
