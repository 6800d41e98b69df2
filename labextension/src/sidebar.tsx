/**
 * The aicloud panel in JupyterLab's left bar: tabs for jobs, schedules and resources, and the
 * job and new-schedule views the commands open.
 */

import * as React from 'react';

import { LabIcon, ReactWidget } from '@jupyterlab/ui-components';

import { AICloudAPI } from './api';
import { messageOf, usePoll } from './components/hooks';
import { JobsList } from './components/JobsList';
import { JobView } from './components/JobView';
import { ResourcesPanel } from './components/ResourcesPanel';
import { ScheduleForm } from './components/ScheduleForm';
import { SchedulesList } from './components/SchedulesList';
import { IOutput, ISchedule, RunSelection } from './tokens';

const cloudSvg =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M19.35 10.04A7.49 7.49 0 0 0 12 4C9.11 4 6.6 5.64 ' +
  '5.35 8.04A5.994 5.994 0 0 0 0 14c0 3.31 2.69 6 6 6h13c2.76 0 5-2.24 5-5 0-2.64-2.05-4.78-4.65-4.96z"/></svg>';

export const cloudIcon = new LabIcon({ name: 'aicloud:cloud', svgstr: cloudSvg });

export type Tab = 'jobs' | 'schedules' | 'resources';

export type View =
  | { tab: Tab }
  | { tab: 'jobs'; jobId: string }
  | { tab: 'schedules'; newSchedule: string };

export interface ISidebarOptions {
  api: AICloudAPI;
  /** The path of the notebook the user works in, if any. */
  currentNotebook: () => string | null;
  openOutput: (jobId: string, output: IOutput) => Promise<void>;
  /** Open a job's page in the main area. */
  openJobPage?: (jobId: string) => void;
  /** Open runs side by side in the main area (no selection: the user picks). */
  openCompare?: (selection: RunSelection | null) => void;
}

const TABS: { id: Tab; label: string }[] = [
  { id: 'jobs', label: 'Jobs' },
  { id: 'schedules', label: 'Schedules' },
  { id: 'resources', label: 'Resources' }
];

function Panel(props: {
  options: ISidebarOptions;
  view: View;
  notice: { text: string; error: boolean } | null;
  created: ISchedule | null;
  navigate: (view: View) => void;
  onCreated: (schedule: ISchedule) => void;
}): JSX.Element {
  const { api } = props.options;
  const status = usePoll(() => api.status(), 30000, []);
  const view = props.view;
  const onKeyDown = (event: React.KeyboardEvent<HTMLDivElement>) => {
    const at = TABS.findIndex(t => t.id === view.tab);
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (step) {
      const next = TABS[(at + step + TABS.length) % TABS.length];
      props.navigate({ tab: next.id });
      const button = event.currentTarget.querySelector<HTMLButtonElement>(`[data-tab="${next.id}"]`);
      button?.focus();
    }
  };
  let body: JSX.Element;
  if ('jobId' in view) {
    body = (
      <JobView
        key={view.jobId}
        api={api}
        jobId={view.jobId}
        onBack={() => props.navigate({ tab: 'jobs' })}
        onOpenJob={id => props.navigate({ tab: 'jobs', jobId: id })}
        onOpenOutput={props.options.openOutput}
        onOpenPage={props.options.openJobPage}
      />
    );
  } else if ('newSchedule' in view) {
    body = (
      <ScheduleForm
        key={view.newSchedule}
        api={api}
        path={view.newSchedule}
        onDone={schedule => {
          if (schedule) {
            props.onCreated(schedule);
          }
          props.navigate({ tab: 'schedules' });
        }}
      />
    );
  } else if (view.tab === 'schedules') {
    body = (
      <SchedulesList
        api={api}
        notebookPath={props.options.currentNotebook()}
        onNew={path => props.navigate({ tab: 'schedules', newSchedule: path })}
        onOpenJob={id => props.navigate({ tab: 'jobs', jobId: id })}
        onCompare={props.options.openCompare}
        created={props.created}
      />
    );
  } else if (view.tab === 'resources') {
    body = <ResourcesPanel api={api} status={status.data} />;
  } else {
    const { openCompare } = props.options;
    body = (
      <>
        {openCompare && (
          <div className="aicloud-actions">
            <button
              className="aicloud-button aicloud-compare-open"
              title="Runs side by side: by tag, by schedule or by job ids"
              onClick={() => openCompare(null)}
            >
              Compare runs…
            </button>
          </div>
        )}
        <JobsList
          api={api}
          status={status.data}
          onOpen={id => props.navigate({ tab: 'jobs', jobId: id })}
        />
      </>
    );
  }
  return (
    <div className="aicloud-panel">
      <header className="aicloud-header">
        <h2>aicloud</h2>
        {status.error && (
          <p className="aicloud-error" role="alert">
            The job service does not answer: {status.error}
          </p>
        )}
      </header>
      <div className="aicloud-tabs" role="tablist" aria-label="aicloud views" onKeyDown={onKeyDown}>
        {TABS.map(tab => (
          <button
            key={tab.id}
            role="tab"
            id={`aicloud-tab-${tab.id}`}
            data-tab={tab.id}
            aria-selected={view.tab === tab.id}
            aria-controls="aicloud-tabpanel"
            tabIndex={view.tab === tab.id ? 0 : -1}
            className={`aicloud-tab${view.tab === tab.id ? ' aicloud-tab-active' : ''}`}
            onClick={() => props.navigate({ tab: tab.id })}
          >
            {tab.label}
          </button>
        ))}
      </div>
      {props.notice && (
        <p className={props.notice.error ? 'aicloud-error' : 'aicloud-notice'} role="alert">
          {props.notice.text}
        </p>
      )}
      <div
        className="aicloud-tabpanel"
        id="aicloud-tabpanel"
        role="tabpanel"
        aria-labelledby={`aicloud-tab-${view.tab}`}
      >
        {body}
      </div>
    </div>
  );
}

/** The left-bar widget; commands drive it through `show*` and `notify`. */
export class AICloudSidebar extends ReactWidget {
  static readonly ID = 'aicloud-sidebar';

  private _view: View = { tab: 'jobs' };
  private _notice: { text: string; error: boolean } | null = null;
  private _created: ISchedule | null = null;

  constructor(private readonly _options: ISidebarOptions) {
    super();
    this.id = AICloudSidebar.ID;
    this.addClass('aicloud-sidebar');
    this.title.icon = cloudIcon;
    this.title.caption = 'aicloud: jobs, schedules and resources';
  }

  get view(): View {
    return this._view;
  }

  showView(view: View): void {
    this._view = view;
    this._notice = null;
    if (!('newSchedule' in view) && view.tab !== 'schedules') {
      this._created = null;
    }
    this.update();
  }

  showJob(jobId: string): void {
    this.showView({ tab: 'jobs', jobId });
  }

  showScheduleForm(path: string): void {
    this.showView({ tab: 'schedules', newSchedule: path });
  }

  /** Show a message above the current view (an error in red). */
  notify(text: string, error = false): void {
    this._notice = { text, error };
    this.update();
  }

  notifyError(error: unknown): void {
    this.notify(messageOf(error), true);
  }

  render(): JSX.Element {
    return (
      <Panel
        options={this._options}
        view={this._view}
        notice={this._notice}
        created={this._created}
        navigate={view => this.showView(view)}
        onCreated={schedule => {
          this._created = schedule;
        }}
      />
    );
  }
}
