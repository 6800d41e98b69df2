/**
 * The job page's header: status, kind, owner, a ticking duration, the attempts and restarts
 * as a timeline, the origin notebook as a link, and the parameters.
 */

import * as React from 'react';

import { StatusBadge } from '../components/JobsList';
import { ranks } from '../format';
import { IJobDetails, TERMINAL_STATUSES } from '../tokens';
import { duration, elapsedSeconds, timelineSegments } from './timeline';

/** Re-render every second while `on`. */
function useTicker(on: boolean): number {
  const [now, setNow] = React.useState(Date.now());
  React.useEffect(() => {
    if (!on) {
      return;
    }
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [on]);
  return on ? now : Date.now();
}

function Timeline(props: { job: IJobDetails; now: number }): JSX.Element | null {
  const segments = timelineSegments(props.job.attempts ?? [], props.now);
  if (!segments.length) {
    return null;
  }
  return (
    <div className="aicloud-timeline" role="list" aria-label="Attempts">
      {segments.map(s => (
        <span
          key={s.number}
          role="listitem"
          className={`aicloud-timeline-attempt aicloud-status-${s.status}`}
          style={{ left: `${s.leftPercent}%`, width: `${s.widthPercent}%` }}
          title={s.label}
          aria-label={s.label}
          data-restarts={s.restarts}
        >
          {s.number}
          {s.restarts > 0 && <span className="aicloud-timeline-restarts">↻{s.restarts}</span>}
        </span>
      ))}
    </div>
  );
}

function Parameters(props: { values: Record<string, unknown> }): JSX.Element | null {
  const entries = Object.entries(props.values);
  if (!entries.length) {
    return null;
  }
  return (
    <table className="aicloud-parameters" aria-label="Parameters">
      <tbody>
        {entries.map(([name, value]) => (
          <tr key={name}>
            <th scope="row">{name}</th>
            <td>
              <code>{JSON.stringify(value)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export interface IHeaderProps {
  job: IJobDetails;
  /** When the job was fetched (ms): the server's duration counts from then. */
  fetchedAt: number;
  openNotebook: (path: string) => void;
}

export function Header(props: IHeaderProps): JSX.Element {
  const { job } = props;
  const running = !TERMINAL_STATUSES.has(job.status) && !!job.started_at;
  const now = useTicker(running);
  const seconds =
    typeof job.duration_seconds === 'number'
      ? job.duration_seconds + (running ? Math.max(0, now - props.fetchedAt) / 1000 : 0)
      : elapsedSeconds(job.started_at, job.finished_at, now);
  const origin = job.origin ?? job.spec.origin?.notebook ?? null;
  const world = ranks(job.spec);
  return (
    <header className="aicloud-page-header">
      <div className="aicloud-page-title">
        <h2>{job.name ?? job.id}</h2>
        <StatusBadge status={job.status} />
      </div>
      <dl className="aicloud-page-facts">
        <dt>Kind</dt>
        <dd className="aicloud-page-kind">
          {job.kind}
          {job.framework !== 'none' ? ` (${job.framework})` : ''} · {world} rank
          {world === 1 ? '' : 's'} · {job.backend}
        </dd>
        <dt>Owner</dt>
        <dd className="aicloud-page-owner">{job.owner}</dd>
        <dt>Duration</dt>
        <dd className="aicloud-page-duration" data-seconds={seconds === null ? '' : Math.floor(seconds)}>
          {duration(seconds)}
        </dd>
        <dt>Attempts</dt>
        <dd className="aicloud-page-attempts">
          {job.attempt_count} · {job.restarts} restart{job.restarts === 1 ? '' : 's'}
        </dd>
        {origin && (
          <>
            <dt>Notebook</dt>
            <dd>
              <a
                href="#"
                className="aicloud-page-origin"
                onClick={event => {
                  event.preventDefault();
                  props.openNotebook(origin);
                }}
              >
                {origin}
              </a>
            </dd>
          </>
        )}
        {job.reason && (
          <>
            <dt>Reason</dt>
            <dd className="aicloud-reason">{job.reason}</dd>
          </>
        )}
        <dt>Id</dt>
        <dd>
          <code>{job.id}</code>
        </dd>
      </dl>
      <Timeline job={job} now={now} />
      <Parameters values={job.parameters ?? job.spec.parameters ?? {}} />
    </header>
  );
}
