/**
 * A job's log, following live: rank prefixes highlighted, a rank filter, pause and search.
 *
 * The log is streamed with `follow=true`. Pausing stops the stream and keeps the byte offset;
 * resuming reads on from there. Rank filtering is done here, on the `[rankN]:` prefixes, so
 * the offsets stay those of the whole file.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { lineRank } from '../format';
import { ErrorLine, messageOf } from './hooks';

/** The most log text kept in the page; older text is dropped (the file keeps all of it). */
const MAX_CHARS = 2_000_000;

function LogLine(props: { line: string; search: string }): JSX.Element {
  const rank = lineRank(props.line);
  const prefixEnd = rank === null ? 0 : props.line.indexOf(':') + 1;
  const prefix = props.line.slice(0, prefixEnd);
  const rest = props.line.slice(prefixEnd);
  let body: React.ReactNode = rest;
  if (props.search) {
    const at = rest.toLowerCase().indexOf(props.search.toLowerCase());
    if (at >= 0) {
      body = (
        <>
          {rest.slice(0, at)}
          <mark>{rest.slice(at, at + props.search.length)}</mark>
          {rest.slice(at + props.search.length)}
        </>
      );
    }
  }
  return (
    <div className="aicloud-log-line" data-rank={rank ?? undefined}>
      {prefix && <span className={`aicloud-rank aicloud-rank-${rank! % 8}`}>{prefix}</span>}
      {body}
    </div>
  );
}

export function LogView(props: { api: AICloudAPI; jobId: string; worldSize: number }): JSX.Element {
  const [text, setText] = React.useState('');
  const [paused, setPaused] = React.useState(false);
  const [ended, setEnded] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);
  const [search, setSearch] = React.useState('');
  const [rank, setRank] = React.useState('');
  const offset = React.useRef(0);
  const box = React.useRef<HTMLPreElement>(null);

  React.useEffect(() => {
    if (paused || ended) {
      return;
    }
    const abort = new AbortController();
    setError(null);
    props.api
      .followLog(
        props.jobId,
        offset.current,
        (piece, next) => {
          offset.current = next;
          setText(old => {
            const joined = old + piece;
            return joined.length > MAX_CHARS ? joined.slice(joined.length - MAX_CHARS) : joined;
          });
        },
        { signal: abort.signal }
      )
      .then(() => {
        if (!abort.signal.aborted) {
          setEnded(true);
        }
      })
      .catch(e => {
        if (!abort.signal.aborted) {
          setError(messageOf(e));
        }
      });
    return () => abort.abort();
  }, [props.jobId, paused, ended]);

  React.useEffect(() => {
    if (!paused && box.current) {
      box.current.scrollTop = box.current.scrollHeight;
    }
  }, [text, paused, search, rank]);

  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') {
    lines.pop();
  }
  const shown = lines.filter(
    line =>
      (rank === '' || lineRank(line) === Number(rank)) &&
      (!search || line.toLowerCase().includes(search.toLowerCase()))
  );
  const searchId = `aicloud-log-search-${props.jobId}`;
  return (
    <section className="aicloud-log" aria-label="Log">
      <div className="aicloud-log-toolbar">
        <button
          className="aicloud-button aicloud-log-pause"
          aria-pressed={paused}
          onClick={() => setPaused(p => !p)}
          disabled={ended}
        >
          {paused ? 'Resume' : 'Pause'}
        </button>
        <label htmlFor={searchId} className="aicloud-visually-hidden">
          Search the log
        </label>
        <input
          id={searchId}
          className="aicloud-log-search"
          type="search"
          placeholder="Search the log"
          value={search}
          onChange={e => setSearch(e.target.value)}
        />
        {props.worldSize > 1 && (
          <select
            aria-label="Show the lines of one rank"
            value={rank}
            onChange={e => setRank(e.target.value)}
          >
            <option value="">All ranks</option>
            {Array.from({ length: props.worldSize }, (_, r) => (
              <option key={r} value={String(r)}>
                rank {r}
              </option>
            ))}
          </select>
        )}
        <span className="aicloud-muted aicloud-log-state" aria-live="polite">
          {ended ? 'ended' : paused ? 'paused' : 'following'}
          {search ? ` · ${shown.length} matching line${shown.length === 1 ? '' : 's'}` : ''}
        </span>
      </div>
      <ErrorLine error={error} />
      <pre className="aicloud-log-text" ref={box} tabIndex={0} aria-label="Log text">
        {shown.map((line, i) => (
          <LogLine key={i} line={line} search={search} />
        ))}
      </pre>
    </section>
  );
}
