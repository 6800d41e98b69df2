/**
 * The job page in JupyterLab's main area: the header, then the metrics, resource use, the
 * serve job's statistics, the outputs and the log, for any job kind.
 */

import * as React from 'react';

import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';

import { AICloudAPI } from '../api';
import { cloudIcon } from '../sidebar';
import { ErrorLine, messageOf } from '../components/hooks';
import { ranks } from '../format';
import { IJobDetails, IOutput, TERMINAL_STATUSES } from '../tokens';
import { Header } from './Header';
import { LogPane } from './LogPane';
import { MetricsSection } from './MetricsSection';
import { OutputsSection } from './OutputsSection';
import { ServingSection } from './ServingSection';
import { UsageSection } from './UsageSection';

const POLL_MS = 1500;

export interface IJobPageOptions {
  api: AICloudAPI;
  jobId: string;
  openNotebook: (path: string) => void;
  openOutput: (jobId: string, output: IOutput) => Promise<void>;
  /** Called with each fresh copy of the job (the tab's title follows its name). */
  onJob?: (job: IJobDetails) => void;
}

/** The job, polled while it can still change. */
function useJob(api: AICloudAPI, jobId: string, onJob?: (job: IJobDetails) => void) {
  const [state, setState] = React.useState<{ job: IJobDetails | null; fetchedAt: number }>({
    job: null,
    fetchedAt: 0
  });
  const [error, setError] = React.useState<string | null>(null);
  React.useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const load = async () => {
      let ended = false;
      try {
        const job = (await api.getJob(jobId)) as IJobDetails;
        if (!alive) {
          return;
        }
        setState({ job, fetchedAt: Date.now() });
        setError(null);
        onJob?.(job);
        ended = TERMINAL_STATUSES.has(job.status);
      } catch (e) {
        if (alive) {
          setError(messageOf(e));
        }
      }
      if (alive && !ended) {
        timer = window.setTimeout(load, POLL_MS);
      }
    };
    void load();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [jobId]);
  return { ...state, error };
}

export function JobPage(props: IJobPageOptions): JSX.Element {
  const { job, fetchedAt, error } = useJob(props.api, props.jobId, props.onJob);
  if (!job) {
    return (
      <div className="aicloud-job-page">
        <ErrorLine error={error} />
        {!error && <p className="aicloud-muted">Loading job {props.jobId}…</p>}
      </div>
    );
  }
  const running = !TERMINAL_STATUSES.has(job.status);
  return (
    <div className="aicloud-job-page" data-job-id={job.id} data-status={job.status}>
      <Header job={job} fetchedAt={fetchedAt} openNotebook={props.openNotebook} />
      <ErrorLine error={error} />
      {job.kind === 'serve' && (
        <ServingSection api={props.api} jobId={job.id} endpoint={job.endpoint} running={job.status === 'running'} />
      )}
      <MetricsSection api={props.api} jobId={job.id} status={job.status} />
      {job.started_at && <UsageSection api={props.api} jobId={job.id} status={job.status} />}
      <OutputsSection api={props.api} jobId={job.id} status={job.status} openOutput={props.openOutput} />
      <LogPane api={props.api} jobId={job.id} status={job.status} worldSize={ranks(job.spec)} />
      {running && <span className="aicloud-live" aria-hidden="true" />}
    </div>
  );
}

/** The page's content widget. */
export class JobPageContent extends ReactWidget {
  constructor(private readonly _options: IJobPageOptions) {
    super();
    this.addClass('aicloud-job-page-content');
  }

  render(): JSX.Element {
    return <JobPage {...this._options} />;
  }
}

/** The main-area tab of one job: `aicloud-job-<id>`. */
export function createJobPage(options: Omit<IJobPageOptions, 'onJob'>): MainAreaWidget<JobPageContent> {
  let widget: MainAreaWidget<JobPageContent> | null = null;
  const content = new JobPageContent({
    ...options,
    onJob: job => {
      if (widget) {
        widget.title.label = `Job: ${job.name ?? job.id}`;
        widget.title.caption = `${job.kind} job ${job.id} (${job.status})`;
      }
    }
  });
  widget = new MainAreaWidget({ content });
  widget.id = jobPageId(options.jobId);
  widget.title.label = `Job ${options.jobId.slice(0, 8)}`;
  widget.title.icon = cloudIcon;
  widget.title.closable = true;
  widget.addClass('aicloud-job-page-widget');
  return widget;
}

export function jobPageId(jobId: string): string {
  return `aicloud-job-${jobId}`;
}

/** The job id of a URL query (`?aicloud-job=<id>`), or null. */
export function jobIdOfSearch(search: string): string | null {
  const id = new URLSearchParams(search).get('aicloud-job');
  return id && /^[A-Za-z0-9_.-]{1,128}$/.test(id) ? id : null;
}
