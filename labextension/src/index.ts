/**
 * The aicloud JupyterLab extension: the sidebar, and "Run notebook as job" / "Schedule
 * notebook…" in the command palette and the notebook toolbar.
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CommandToolbarButton } from '@jupyterlab/ui-components';

import { AICloudAPI } from './api';
import { serverAPI } from './connection';
import { basename } from './format';
import { AICloudSidebar, cloudIcon } from './sidebar';
import { IOutput } from './tokens';

namespace CommandIDs {
  export const open = 'aicloud:open';
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
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const api = serverAPI(app.serviceManager.serverSettings);
    const sidebar = new AICloudSidebar({
      api,
      currentNotebook: () => (tracker.currentWidget ? Private.localPath(tracker.currentWidget) : null),
      openOutput: (jobId, output) => Private.openOutput(app, api, jobId, output)
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
        reveal();
        try {
          const path = await Private.saved(panel);
          const job = await api.createJob({
            kind: 'notebook',
            notebook: path,
            name: basename(path).replace(/\.ipynb$/, ''),
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
