/**
 * The live jobs list: status, kind, ranks, progress and age, with filters.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { age, ranks } from '../format';
import { IJob, IServiceStatus, JobKind, JobStatus, TERMINAL_STATUSES } from '../tokens';
import { ErrorLine, usePoll } from './hooks';
import { JobSummary } from './JobSummary';

const ACTIVE: JobStatus[] = ['queued', 'starting', 'running'];
const STATUS_FILTERS: { value: string; label: string; statuses?: JobStatus[] }[] = [
  { value: 'all', label: 'All statuses' },
  { value: 'active', label: 'Active', statuses: ACTIVE },
  { value: 'succeeded', label: 'Succeeded', statuses: ['succeeded'] },
  { value: 'failed', label: 'Failed', statuses: ['failed'] },
  { value: 'cancelled', label: 'Cancelled', statuses: ['cancelled'] }
];
const KINDS: JobKind[] = ['train', 'notebook', 'command', 'infer', 'serve'];

export const POLL_MS = 1500;

interface IRow {
  job: IJob;
  fraction: number | null;
}

export function StatusBadge(props: { status: string }): JSX.Element {
  return (
    <span className={`aicloud-status aicloud-status-${props.status}`} data-status={props.status}>
      {props.status}
    </span>
  );
}

export function ProgressBar(props: { fraction: number | null; label: string }): JSX.Element | null {
  if (props.fraction === null) {
    return null;
  }
  const percent = Math.round(props.fraction * 100);
  return (
    <span
      className="aicloud-progress"
      role="progressbar"
      aria-label={props.label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      title={`${percent}%`}
    >
      <span className="aicloud-progress-fill" style={{ width: `${percent}%` }} />
    </span>
  );
}

export function JobsList(props: {
  api: AICloudAPI;
  status: IServiceStatus | null;
  onOpen: (id: string) => void;
}): JSX.Element {
  const [statusFilter, setStatusFilter] = React.useState('all');
  const [kind, setKind] = React.useState('');
  const [allUsers, setAllUsers] = React.useState(false);
  const [ownerName, setOwnerName] = React.useState('');
  const hub = props.status?.mode === 'hub';
  const admin = props.status?.admin ?? false;
  const user = props.status?.user;
  // The server filters by owner: an admin's "All users" lists everyone's (or one user's).
  const owner = admin && allUsers ? ownerName.trim() || undefined : user;
  const polled = usePoll<IRow[]>(
    async () => {
      const statuses = STATUS_FILTERS.find(f => f.value === statusFilter)?.statuses;
      const page = await props.api.listJobs({
        status: statuses,
        kind: (kind || undefined) as JobKind | undefined,
        owner,
        limit: 100
      });
      return Promise.all(
        page.jobs.map(async job => {
          if (TERMINAL_STATUSES.has(job.status) || job.status === 'queued') {
            return { job, fraction: null };
          }
          const metrics = await props.api.metrics(job.id, 0, 1).catch(() => null);
          return { job, fraction: metrics?.progress?.fraction ?? null };
        })
      );
    },
    POLL_MS,
    [statusFilter, kind, owner]
  );
  const rows = polled.data ?? [];
  return (
    <section className="aicloud-jobs" aria-label="Jobs">
      <div className="aicloud-filters">
        <label>
          Status{' '}
          <select
            aria-label="Filter jobs by status"
            value={statusFilter}
            onChange={e => setStatusFilter(e.target.value)}
          >
            {STATUS_FILTERS.map(f => (
              <option key={f.value} value={f.value}>
                {f.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind{' '}
          <select
            aria-label="Filter jobs by kind"
            value={kind}
            onChange={e => setKind(e.target.value)}
          >
            <option value="">All kinds</option>
            {KINDS.map(k => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        {admin && (
          <label>
            <input
              type="checkbox"
              checked={allUsers}
              onChange={e => setAllUsers(e.target.checked)}
            />{' '}
            All users
          </label>
        )}
        {admin && allUsers && (
          <label>
            Owner{' '}
            <input
              type="text"
              aria-label="Only jobs of this user (empty: everyone)"
              placeholder="everyone"
              value={ownerName}
              onChange={e => setOwnerName(e.target.value)}
            />
          </label>
        )}
      </div>
      <ErrorLine error={polled.error} />
      {polled.data === null && !polled.error && <p className="aicloud-muted">Loading…</p>}
      {polled.data !== null && rows.length === 0 && (
        <p className="aicloud-muted">No jobs yet. Run a notebook as a job to start one.</p>
      )}
      <ul className="aicloud-list aicloud-job-list">
        {rows.map(({ job, fraction }) => (
          <li key={job.id} data-job-id={job.id} data-status={job.status}>
            <button
              className="aicloud-row"
              onClick={() => props.onOpen(job.id)}
              aria-label={`Job ${job.name ?? job.id}, ${job.status}`}
            >
              <span className="aicloud-row-title">{job.name ?? job.id}</span>
              <StatusBadge status={job.status} />
              <span className="aicloud-row-meta">
                {job.kind} · {ranks(job.spec)} rank{ranks(job.spec) === 1 ? '' : 's'} ·{' '}
                <span title={job.created_at}>{age(job.created_at)}</span>
                {hub && job.owner !== user ? ` · ${job.owner}` : ''}
              </span>
              <JobSummary job={job} />
              <ProgressBar fraction={fraction} label={`Progress of ${job.name ?? job.id}`} />
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
