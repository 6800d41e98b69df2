/**
 * One job: its state, live log and metrics, its outputs, and cancel / delete / rerun.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { age, ranks } from '../format';
import { IJob, IOutput, TERMINAL_STATUSES } from '../tokens';
import { ErrorLine, useAction, usePoll } from './hooks';
import { POLL_MS, StatusBadge } from './JobsList';
import { LogView } from './LogView';
import { MetricsChart } from './MetricsChart';

export interface IJobViewProps {
  api: AICloudAPI;
  jobId: string;
  onBack: () => void;
  onOpenJob: (id: string) => void;
  /** Open an output notebook in JupyterLab (a copy in the file browser). */
  onOpenOutput: (jobId: string, output: IOutput) => Promise<void>;
  /** Open the job's page in the main area. */
  onOpenPage?: (jobId: string) => void;
}

function Outputs(props: IJobViewProps & { job: IJob }): JSX.Element | null {
  const ended = TERMINAL_STATUSES.has(props.job.status);
  const outputs = usePoll(() => props.api.outputs(props.jobId), 0, [props.jobId, ended]);
  const action = useAction();
  if (!outputs.data?.length && !outputs.error) {
    return null;
  }
  return (
    <section className="aicloud-outputs" aria-label="Outputs">
      <h4>Outputs</h4>
      <ErrorLine error={outputs.error ?? action.error} />
      <ul className="aicloud-list">
        {(outputs.data ?? []).map(output => (
          <li key={output.name}>
            {output.name.endsWith('.ipynb') && (
              <button
                className="aicloud-button aicloud-open-output"
                disabled={action.busy}
                onClick={() => action.run(() => props.onOpenOutput(props.jobId, output))}
              >
                Open {output.name}
              </button>
            )}{' '}
            <a
              href={props.api.outputURL(props.jobId, output.name)}
              download={output.name}
              className="aicloud-download"
            >
              Download {output.name}
            </a>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function JobView(props: IJobViewProps): JSX.Element {
  const polled = usePoll(() => props.api.getJob(props.jobId), POLL_MS, [props.jobId]);
  const action = useAction();
  const [deleted, setDeleted] = React.useState(false);
  const job = polled.data;
  const ended = job ? TERMINAL_STATUSES.has(job.status) : false;
  const title = job?.name ?? props.jobId;
  return (
    <section className="aicloud-job-view" aria-label={`Job ${title}`} data-job-id={props.jobId}>
      <div className="aicloud-view-head">
        <button className="aicloud-button aicloud-back" onClick={props.onBack}>
          ← Jobs
        </button>
        <h3 className="aicloud-view-title">{title}</h3>
        {job && <StatusBadge status={job.status} />}
      </div>
      <ErrorLine error={polled.error} />
      {job && (
        <>
          <dl className="aicloud-facts">
            <dt>Id</dt>
            <dd>{job.id}</dd>
            <dt>Kind</dt>
            <dd>
              {job.kind}
              {job.framework !== 'none' ? ` (${job.framework})` : ''} · {ranks(job.spec)} rank
              {ranks(job.spec) === 1 ? '' : 's'} · {job.backend}
            </dd>
            {job.spec.notebook && (
              <>
                <dt>Notebook</dt>
                <dd>{job.spec.notebook}</dd>
              </>
            )}
            <dt>Created</dt>
            <dd title={job.created_at}>{age(job.created_at)} ago</dd>
            {job.reason && (
              <>
                <dt>Reason</dt>
                <dd className="aicloud-reason">{job.reason}</dd>
              </>
            )}
            {job.attempt_count > 1 && (
              <>
                <dt>Attempts</dt>
                <dd>{job.attempt_count}</dd>
              </>
            )}
          </dl>
          <div className="aicloud-actions">
            {props.onOpenPage && (
              <button
                className="aicloud-button aicloud-open-page"
                onClick={() => props.onOpenPage!(job.id)}
                title="Charts, resource use, outputs and the whole log in the main area"
              >
                Open page
              </button>
            )}
            {!ended && (
              <button
                className="aicloud-button aicloud-cancel"
                disabled={action.busy}
                onClick={() =>
                  action.run(async () => {
                    await props.api.cancelJob(job.id);
                    polled.refresh();
                  })
                }
              >
                Cancel
              </button>
            )}
            {ended && !deleted && (
              <button
                className="aicloud-button aicloud-delete"
                disabled={action.busy}
                onClick={() =>
                  action.run(async () => {
                    await props.api.deleteJob(job.id);
                    setDeleted(true);
                    props.onBack();
                  })
                }
              >
                Delete
              </button>
            )}
            <button
              className="aicloud-button aicloud-rerun"
              disabled={action.busy}
              onClick={() =>
                action.run(async () => props.onOpenJob((await props.api.rerunJob(job.id)).id))
              }
            >
              Rerun
            </button>
          </div>
          <ErrorLine error={action.error} />
          <MetricsChart api={props.api} jobId={job.id} status={job.status} />
          <Outputs {...props} job={job} />
          <LogView api={props.api} jobId={job.id} worldSize={ranks(job.spec)} />
        </>
      )}
    </section>
  );
}
