/**
 * A job's log in a virtual view: only the lines in view are fetched (`GET /jobs/{id}/log-lines`
 * windows) and put in the DOM, so a 1,000,000-line log scrolls like a short one. ANSI colours
 * are rendered, lines never wrap (the view scrolls sideways), one rank can be shown alone,
 * search jumps to the next or previous match, and the view follows the tail while the job runs.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { ErrorLine, messageOf } from '../components/hooks';
import { ILogLine, TERMINAL_STATUSES } from '../tokens';
import { ansiSegments, splitMatches } from './ansi';
import {
  IGeometry,
  contentHeight,
  pagesFor,
  positionOf,
  scrollTopFor,
  scrollTopOfEnd,
  visibleWindow
} from './logwindow';

/** px per line: the CSS of `.aicloud-log-row` uses the same. */
export const ROW_PX = 18;
const PAGE = 200;
const KEEP_PAGES = 50;
const POLL_MS = 1000;

function LogRow(props: { line: ILogLine | undefined; at: number; query: string; current: boolean }): JSX.Element {
  const line = props.line;
  const classes = ['aicloud-log-row'];
  if (props.current) {
    classes.push('aicloud-log-current');
  }
  if (!line) {
    return <div className={`${classes.join(' ')} aicloud-log-pending`} data-at={props.at} />;
  }
  return (
    <div className={classes.join(' ')} data-line={line.n} data-rank={line.rank ?? undefined}>
      <span className="aicloud-log-n">{line.n + 1}</span>
      {ansiSegments(line.text).map((segment, i) => (
        <span
          key={i}
          className={segment.className || undefined}
          style={segment.color || segment.background ? { color: segment.color, background: segment.background } : undefined}
        >
          {splitMatches(segment.text, props.query).map(([text, match], j) =>
            match ? <mark key={j}>{text}</mark> : text
          )}
        </span>
      ))}
    </div>
  );
}

/** The fetched pages of one filtered view, and the view's length. */
class PageCache {
  constructor(readonly rank: number | null) {}
  total = -1;
  pages = new Map<number, ILogLine[]>();
  loading = new Set<number>();

  line(i: number): ILogLine | undefined {
    return this.pages.get(Math.floor(i / PAGE))?.[i % PAGE];
  }

  /** Keep a page; drop the oldest beyond {@link KEEP_PAGES}. */
  put(page: number, lines: ILogLine[]): void {
    this.pages.delete(page);
    this.pages.set(page, lines);
    while (this.pages.size > KEEP_PAGES) {
      this.pages.delete(this.pages.keys().next().value!);
    }
  }

  /** Whether a page must be (re)fetched: absent, or short of what the log now has. */
  stale(page: number): boolean {
    const lines = this.pages.get(page);
    return !lines || (lines.length < PAGE && page * PAGE + lines.length < this.total);
  }
}

export interface ILogPaneProps {
  api: AICloudAPI;
  jobId: string;
  status: string;
  worldSize: number;
  /** The viewport's height in px. */
  height?: number;
}

export function LogPane(props: ILogPaneProps): JSX.Element {
  const { api, jobId } = props;
  const running = !TERMINAL_STATUSES.has(props.status);
  const viewportHeight = props.height ?? 480;
  const [rank, setRank] = React.useState<number | null>(null);
  const [follow, setFollow] = React.useState(running);
  const [scrollTop, setScrollTop] = React.useState(0);
  const [, setVersion] = React.useState(0);
  const [error, setError] = React.useState<string | null>(null);
  const [query, setQuery] = React.useState('');
  const [match, setMatch] = React.useState<{ index: number; total: number; line: number } | null>(null);
  const cache = React.useRef(new PageCache(null));
  const viewport = React.useRef<HTMLDivElement>(null);
  const programmatic = React.useRef(false);
  const rerender = () => setVersion(v => v + 1);

  const total = Math.max(0, cache.current.total);
  const geometry: IGeometry = { total, rowHeight: ROW_PX, viewportHeight };
  const window_ = visibleWindow(geometry, scrollTop);

  const fetchPage = async (c: PageCache, page: number) => {
    if (c.loading.has(page)) {
      return;
    }
    c.loading.add(page);
    try {
      const answer = await api.logLines(jobId, page * PAGE, PAGE, { rank: c.rank });
      c.total = answer.total;
      c.put(page, answer.lines);
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    } finally {
      c.loading.delete(page);
    }
    if (c === cache.current) {
      rerender();
    }
  };

  const scrollTo = (top: number) => {
    const node = viewport.current;
    if (node) {
      programmatic.current = true;
      node.scrollTop = top;
      setScrollTop(node.scrollTop);
    }
  };

  // A new filter: a new cache, and the view's length from its last page.
  React.useEffect(() => {
    const c = new PageCache(rank);
    cache.current = c;
    setMatch(null);
    let alive = true;
    let timer: number | undefined;
    const poll = async () => {
      try {
        const tail = await api.logLines(jobId, -1, PAGE, { rank: c.rank });
        if (!alive) {
          return;
        }
        c.total = tail.total;
        if (tail.start % PAGE === 0) {
          c.put(tail.start / PAGE, tail.lines);
        }
        setError(null);
        rerender();
        if (alive && !TERMINAL_STATUSES.has(tail.status)) {
          timer = window.setTimeout(poll, POLL_MS);
        }
      } catch (e) {
        if (alive) {
          setError(messageOf(e));
          timer = window.setTimeout(poll, POLL_MS * 3);
        }
      }
    };
    void poll();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [jobId, rank]);

  // Fetch the pages in view; follow the end.
  React.useEffect(() => {
    if (follow && total > 0) {
      const end = scrollTopOfEnd(geometry);
      if (Math.abs((viewport.current?.scrollTop ?? 0) - end) > 1) {
        scrollTo(end);
        return;
      }
    }
    const c = cache.current;
    for (const page of pagesFor(window_.first, window_.count, PAGE)) {
      if (c.stale(page)) {
        void fetchPage(c, page);
      }
    }
  });

  const onScroll = () => {
    const node = viewport.current!;
    if (programmatic.current) {
      programmatic.current = false;
    } else if (follow && node.scrollTop < scrollTopOfEnd(geometry) - ROW_PX) {
      setFollow(false);
    }
    setScrollTop(node.scrollTop);
  };

  const jump = async (step: 1 | -1) => {
    if (!query) {
      return;
    }
    try {
      const filter = { rank, q: query };
      const count = (await api.logLines(jobId, 0, 1, filter)).total;
      if (!count) {
        setMatch({ index: -1, total: 0, line: -1 });
        return;
      }
      const index = match && match.total ? (match.index + step + count) % count : step === 1 ? 0 : count - 1;
      const found = (await api.logLines(jobId, index, 1, filter)).lines[0];
      const position =
        rank === null
          ? found.n
          : await positionOf(found.n, total, async i => (await api.logLines(jobId, i, 1, { rank })).lines[0]?.n ?? Infinity);
      setFollow(false);
      setMatch({ index, total: count, line: found.n });
      scrollTo(scrollTopFor(geometry, Math.max(0, position - Math.floor(viewportHeight / ROW_PX / 3))));
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
  };

  const rows: JSX.Element[] = [];
  for (let i = window_.first; i < window_.first + window_.count; i++) {
    const line = cache.current.line(i);
    rows.push(<LogRow key={i} at={i} line={line} query={query} current={!!match && line?.n === match.line} />);
  }
  return (
    <section className="aicloud-page-section aicloud-page-log" aria-label="Log">
      <div className="aicloud-section-head aicloud-log-toolbar">
        <h3>Log</h3>
        <span className="aicloud-log-total" data-total={cache.current.total < 0 ? '' : total}>
          {total.toLocaleString()} line{total === 1 ? '' : 's'}
        </span>
        {props.worldSize > 1 && (
          <label className="aicloud-inline-label">
            Rank{' '}
            <select
              aria-label="Rank"
              value={rank === null ? '' : String(rank)}
              onChange={e => setRank(e.target.value === '' ? null : Number(e.target.value))}
            >
              <option value="">all</option>
              {Array.from({ length: props.worldSize }, (_, r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
        )}
        <input
          type="search"
          aria-label="Search the log"
          placeholder="Search"
          value={query}
          onChange={e => {
            setQuery(e.target.value);
            setMatch(null);
          }}
          onKeyDown={e => {
            if (e.key === 'Enter') {
              void jump(e.shiftKey ? -1 : 1);
            }
          }}
        />
        <button className="aicloud-button" aria-label="Previous match" onClick={() => void jump(-1)}>
          ↑
        </button>
        <button className="aicloud-button" aria-label="Next match" onClick={() => void jump(1)}>
          ↓
        </button>
        <span className="aicloud-log-match" aria-live="polite">
          {match ? (match.total ? `${match.index + 1} of ${match.total}` : 'no match') : ''}
        </span>
        <label className="aicloud-inline-label">
          <input
            type="checkbox"
            aria-label="Follow the end"
            checked={follow}
            onChange={e => setFollow(e.target.checked)}
          />{' '}
          Follow
        </label>
      </div>
      <ErrorLine error={error} />
      <div
        className="aicloud-log-viewport"
        ref={viewport}
        onScroll={onScroll}
        style={{ height: viewportHeight }}
        tabIndex={0}
        aria-label="Log lines"
      >
        <div className="aicloud-log-spacer jp-RenderedText" style={{ height: contentHeight(geometry) }}>
          <pre
            className="aicloud-log-rows"
            style={{ transform: `translateY(${window_.offsetPx}px)` }}
          >
            {rows}
          </pre>
        </div>
      </div>
    </section>
  );
}
