/**
 * The aicloud JupyterLab extension: the sidebar, and "Run notebook as job" / "Schedule
 * notebook…" in the command palette and the notebook toolbar.
 */

import {
  ILabShell,
  ILayoutRestorer,
  IRouter,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CommandToolbarButton } from '@jupyterlab/ui-components';

import { AICloudAPI } from './api';
import { serverAPI } from './connection';
import { COMPARE_COMMAND, compareCommand } from './compare/command';
import { createJobPage, JobPageContent, jobIdOfSearch } from './jobpage/JobPage';
import { askRunRequest } from './runDialog';
import { AICloudSidebar, cloudIcon } from './sidebar';
import { IOutput } from './tokens';

namespace CommandIDs {
  export const open = 'aicloud:open';
  export const openJob = 'aicloud:open-job';
  export const openJobFromURL = 'aicloud:open-job-from-url';
  export const runNotebook = 'aicloud:run-notebook';
  export const scheduleNotebook = 'aicloud:schedule-notebook';
}

/** Where an output notebook is copied to be opened: `aicloud-outputs/<job id>/<name>`. */
const OUTPUTS_DIR = 'aicloud-outputs';

namespace Private {
  /** The notebook a command acts on: `args.panel` (an id) or `args.path`, else the current one. */
  export function notebook(
    tracker: INotebookTracker,
    args: { path?: unknown; panel?: unknown }
  ): NotebookPanel | null {
    if (typeof args.panel === 'string') {
      return tracker.find(panel => panel.id === args.panel) ?? null;
    }
    if (typeof args.path === 'string') {
      return tracker.find(panel => localPath(panel) === args.path) ?? null;
    }
    return tracker.currentWidget;
  }

  /** The notebook's path relative to the server's root (without a drive prefix). */
  export function localPath(panel: NotebookPanel): string {
    return panel.context.localPath ?? panel.context.path;
  }

  /** Save a notebook with unsaved changes, so the job runs what the user sees. */
  export async function saved(panel: NotebookPanel): Promise<string> {
    if (panel.context.model.dirty && !panel.context.model.readOnly) {
      await panel.context.save();
    }
    return localPath(panel);
  }

  /** Copy an output notebook into the file browser and open it. */
  export async function openOutput(
    app: JupyterFrontEnd,
    api: AICloudAPI,
    jobId: string,
    output: IOutput
  ): Promise<void> {
    const response = await api.request('GET', ['jobs', jobId, 'outputs', output.name]);
    const content = JSON.parse(await response.text());
    const contents = app.serviceManager.contents;
    for (const dir of [OUTPUTS_DIR, `${OUTPUTS_DIR}/${jobId}`]) {
      await contents.save(dir, { type: 'directory' });
    }
    const path = `${OUTPUTS_DIR}/${jobId}/${output.name}`;
    await contents.save(path, { type: 'notebook', format: 'json', content });
    await app.commands.execute('docmanager:open', { path });
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-aicloud:sidebar',
  description: 'aicloud: jobs, schedules and resources in the left bar',
  autoStart: true,
  requires: [ILabShell, INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer, IRouter],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    router: IRouter | null
  ) => {
    const api = serverAPI(app.serviceManager.serverSettings);
    const sidebar = new AICloudSidebar({
      api,
      currentNotebook: () => (tracker.currentWidget ? Private.localPath(tracker.currentWidget) : null),
      openOutput: (jobId, output) => Private.openOutput(app, api, jobId, output),
      openJobPage: id => void app.commands.execute(CommandIDs.openJob, { id }),
      openCompare: selection => void app.commands.execute(COMPARE_COMMAND, { ...selection })
    });
    labShell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, AICloudSidebar.ID);
    tracker.currentChanged.connect(() => sidebar.update());

    const reveal = () => labShell.activateById(sidebar.id);
    const hasNotebook = (args: { path?: unknown; panel?: unknown }) => Private.notebook(tracker, args) !== null;

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open the aicloud sidebar',
      caption: 'Jobs, schedules and resources',
      execute: reveal
    });
    const pages = new WidgetTracker<MainAreaWidget<JobPageContent>>({ namespace: 'aicloud-job' });
    const openPages = new Map<string, MainAreaWidget<JobPageContent>>();
    app.commands.addCommand(CommandIDs.openJob, {
      label: 'Open job page',
      caption: 'A job in the main area: charts, resource use, outputs and the whole log',
      execute: args => {
        const id = String(args.id ?? '');
        const open = openPages.get(id);
        if (open && !open.isDisposed) {
          labShell.activateById(open.id);
          return open;
        }
        const page = createJobPage({
          api,
          jobId: id,
          openNotebook: path => void app.commands.execute('docmanager:open', { path }),
          openOutput: (jobId, output) => Private.openOutput(app, api, jobId, output)
        });
        page.content.node.dataset.jobId = id;
        openPages.set(id, page);
        page.disposed.connect(() => openPages.delete(id));
        void pages.add(page);
        labShell.add(page, 'main');
        labShell.activateById(page.id);
        return page;
      }
    });
    restorer?.restore(pages, {
      command: CommandIDs.openJob,
      args: page => ({ id: page.content.node.dataset.jobId ?? '' }),
      name: page => page.content.node.dataset.jobId ?? ''
    });
    // `<lab URL>?aicloud-job=<id>` opens the page: on load (read below), and on in-app
    // navigation (`router.navigate`); the in-cell monitor links there.
    app.commands.addCommand(CommandIDs.openJobFromURL, {
      execute: args => {
        const id = jobIdOfSearch(String((args as IRouter.ILocation).search ?? ''));
        return id ? app.commands.execute(CommandIDs.openJob, { id }) : undefined;
      }
    });
    router?.register({ command: CommandIDs.openJobFromURL, pattern: /[?&]aicloud-job=/, rank: 10 });
    // JupyterLab's workspace resolver drops the query before the first routing: read it now.
    const linked = jobIdOfSearch(window.location.search);
    if (linked) {
      app.restored
        .then(() => app.commands.execute(CommandIDs.openJob, { id: linked }))
        .catch(reason => console.warn(`aicloud: cannot open job ${linked}`, reason));
    }

    app.commands.addCommand(CommandIDs.runNotebook, {
      label: 'Run notebook as job',
      caption: 'Save the notebook and run it as an aicloud job (papermill)',
      icon: args => (args.toolbar ? cloudIcon : undefined),
      isEnabled: hasNotebook,
      execute: async args => {
        const panel = Private.notebook(tracker, args);
        if (!panel) {
          return;
        }
        try {
          const path = await Private.saved(panel);
          const request = await askRunRequest(api, path);
          if (!request) {
            return;
          }
          reveal();
          const job = await api.createJob({
            kind: 'notebook',
            notebook: path,
            name: request.name,
            parameters: request.parameters,
            tags: request.tags,
            origin: { notebook: path }
          });
          sidebar.showJob(job.id);
        } catch (error) {
          sidebar.showView({ tab: 'jobs' });
          sidebar.notifyError(error);
        }
      }
    });
    app.commands.addCommand(CommandIDs.scheduleNotebook, {
      label: 'Schedule notebook…',
      caption: 'Run this notebook on a cron schedule with aicloud',
      isEnabled: hasNotebook,
      execute: async args => {
        const panel = Private.notebook(tracker, args);
        if (!panel) {
          return;
        }
        reveal();
        try {
          sidebar.showScheduleForm(await Private.saved(panel));
        } catch (error) {
          sidebar.notifyError(error);
        }
      }
    });

    // Runs side by side (issue 18): `aicloud:compare` with `{tag}`, `{schedule_id}` or `{ids}`.
    compareCommand(app, labShell, api, restorer, id => void app.commands.execute(CommandIDs.openJob, { id }));
    palette?.addItem({ command: COMPARE_COMMAND, category: 'aicloud' });

    palette?.addItem({ command: CommandIDs.open, category: 'aicloud' });
    palette?.addItem({ command: CommandIDs.runNotebook, category: 'aicloud' });
    palette?.addItem({ command: CommandIDs.scheduleNotebook, category: 'aicloud' });

    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const buttons = [
          { id: CommandIDs.runNotebook, name: 'aicloud-run', label: 'Run as job' },
          { id: CommandIDs.scheduleNotebook, name: 'aicloud-schedule', label: 'Schedule…' }
        ];
        buttons.forEach((button, i) => {
          const widget = new CommandToolbarButton({
            commands: app.commands,
            id: button.id,
            args: { panel: panel.id, toolbar: true },
            label: button.label
          });
          widget.addClass(`aicloud-toolbar-${button.name}`);
          panel.toolbar.insertItem(10 + i, button.name, widget);
        });
      }
    });
  }
};

export default plugin;
