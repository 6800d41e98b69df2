/**
 * The schedules: cron in words, next tick, pause / resume / run now / delete, run history.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { formatInZone, previewCron } from '../cron';
import { age } from '../format';
import { ISchedule, RunSelection } from '../tokens';
import { ErrorLine, useAction, usePoll } from './hooks';
import { JobSummary } from './JobSummary';
import { StatusBadge } from './JobsList';

const POLL_MS = 3000;

function History(props: {
  api: AICloudAPI;
  schedule: ISchedule;
  onOpenJob: (id: string) => void;
}): JSX.Element {
  const runs = usePoll(() => props.api.scheduleRuns(props.schedule.id, 20), POLL_MS, [
    props.schedule.id
  ]);
  return (
    <div className="aicloud-history" aria-label={`Runs of ${props.schedule.name ?? props.schedule.id}`}>
      <ErrorLine error={runs.error} />
      {runs.data && runs.data.jobs.length === 0 && <p className="aicloud-muted">No runs yet.</p>}
      <ul className="aicloud-list">
        {(runs.data?.jobs ?? []).map(job => (
          <li key={job.id} data-job-id={job.id}>
            <button className="aicloud-row" onClick={() => props.onOpenJob(job.id)}>
              <span className="aicloud-row-title">
                {job.scheduled_for ? formatInZone(new Date(job.scheduled_for), props.schedule.timezone) : 'run now'}
              </span>
              <StatusBadge status={job.status} />
              <span className="aicloud-row-meta">
                {job.id} · {age(job.created_at)} ago{job.pruned ? ' · outputs pruned' : ''}
              </span>
              <JobSummary job={job} />
            </button>
          </li>
        ))}
      </ul>
      {runs.data && runs.data.total > runs.data.jobs.length && (
        <p className="aicloud-muted">
          {runs.data.jobs.length} of {runs.data.total} runs shown
        </p>
      )}
    </div>
  );
}

function ScheduleRow(props: {
  api: AICloudAPI;
  schedule: ISchedule;
  onChanged: () => void;
  onOpenJob: (id: string) => void;
  onCompare?: (selection: RunSelection) => void;
}): JSX.Element {
  const s = props.schedule;
  const [open, setOpen] = React.useState(false);
  const action = useAction();
  const words = previewCron(s.cron, s.timezone, 0).description ?? s.cron;
  const label = s.name ?? s.id;
  const act = (fn: () => Promise<unknown>) =>
    action.run(async () => {
      await fn();
      props.onChanged();
    });
  return (
    <li className="aicloud-schedule" data-schedule-id={s.id} data-paused={s.paused}>
      <div className="aicloud-schedule-head">
        <span className="aicloud-row-title">{label}</span>
        {s.paused && <span className="aicloud-status aicloud-status-paused">paused</span>}
      </div>
      <div className="aicloud-row-meta">
        <code>{s.cron}</code> {s.timezone}: {words}
      </div>
      <div className="aicloud-row-meta">
        {s.job.notebook ?? s.job.name ?? s.job.kind}
        {s.next_tick_at && !s.paused
          ? ` · next ${formatInZone(new Date(s.next_tick_at), s.timezone)}`
          : ''}
      </div>
      <div className="aicloud-actions">
        <button
          className="aicloud-button aicloud-pause"
          disabled={action.busy}
          onClick={() => act(() => props.api.setPaused(s.id, !s.paused))}
          aria-label={`${s.paused ? 'Resume' : 'Pause'} ${label}`}
        >
          {s.paused ? 'Resume' : 'Pause'}
        </button>
        <button
          className="aicloud-button aicloud-run-now"
          disabled={action.busy}
          onClick={() =>
            action.run(async () => {
              const job = await props.api.runSchedule(s.id);
              setOpen(true);
              props.onOpenJob(job.id);
            })
          }
          aria-label={`Run ${label} now`}
        >
          Run now
        </button>
        <button
          className="aicloud-button aicloud-history-toggle"
          aria-expanded={open}
          onClick={() => setOpen(o => !o)}
          aria-label={`Run history of ${label}`}
        >
          History
        </button>
        {props.onCompare && (
          <button
            className="aicloud-button aicloud-compare-runs"
            onClick={() => props.onCompare?.({ schedule_id: s.id })}
            aria-label={`Compare the runs of ${label}`}
          >
            Compare
          </button>
        )}
        <button
          className="aicloud-button aicloud-delete"
          disabled={action.busy}
          onClick={() => act(() => props.api.deleteSchedule(s.id))}
          aria-label={`Delete ${label}`}
        >
          Delete
        </button>
      </div>
      <ErrorLine error={action.error} />
      {open && <History api={props.api} schedule={s} onOpenJob={props.onOpenJob} />}
    </li>
  );
}

export function SchedulesList(props: {
  api: AICloudAPI;
  notebookPath: string | null;
  onNew: (path: string) => void;
  onOpenJob: (id: string) => void;
  /** Open the runs side by side in the main area. */
  onCompare?: (selection: RunSelection) => void;
  /** A schedule just created, to announce. */
  created: ISchedule | null;
}): JSX.Element {
  const polled = usePoll(() => props.api.listSchedules(100), POLL_MS, []);
  return (
    <section className="aicloud-schedules" aria-label="Schedules">
      <div className="aicloud-actions">
        <button
          className="aicloud-button aicloud-primary aicloud-new-schedule"
          disabled={!props.notebookPath}
          title={props.notebookPath ? undefined : 'Open a notebook to schedule it'}
          onClick={() => props.notebookPath && props.onNew(props.notebookPath)}
        >
          Schedule {props.notebookPath ? props.notebookPath.split('/').pop() : 'a notebook'}…
        </button>
      </div>
      {props.created && (
        <p className="aicloud-notice" role="status">
          Schedule {props.created.name ?? props.created.id} created.
        </p>
      )}
      <ErrorLine error={polled.error} />
      {polled.data && polled.data.schedules.length === 0 && (
        <p className="aicloud-muted">No schedules yet.</p>
      )}
      <ul className="aicloud-list aicloud-schedule-list">
        {(polled.data?.schedules ?? []).map(s => (
          <ScheduleRow
            key={s.id}
            api={props.api}
            schedule={s}
            onChanged={polled.refresh}
            onOpenJob={props.onOpenJob}
            onCompare={props.onCompare}
          />
        ))}
      </ul>
    </section>
  );
}
