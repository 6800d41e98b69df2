/**
 * The `aicloud:compare` command: open (or re-point) the one comparison tab in the main area.
 */

import { ILabShell, ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';

import { AICloudAPI } from '../api';
import { RunSelection } from '../tokens';
import { CompareContent, createComparePage } from './ComparePage';
import { selectionOfArgs } from './selection';

export const COMPARE_COMMAND = 'aicloud:compare';

/** Register the command; `openJob` opens a run's page from the table. */
export function compareCommand(
  app: JupyterFrontEnd,
  labShell: ILabShell,
  api: AICloudAPI,
  restorer: ILayoutRestorer | null,
  openJob: (id: string) => void
): void {
  const tracker = new WidgetTracker<MainAreaWidget<CompareContent>>({ namespace: 'aicloud-compare' });
  app.commands.addCommand(COMPARE_COMMAND, {
    label: 'Compare runs…',
    caption: 'Runs side by side: parameters, durations, final metrics and overlaid curves',
    execute: args => {
      const selection: RunSelection | null = selectionOfArgs(args);
      let page = tracker.currentWidget;
      if (page && !page.isDisposed) {
        if (selection) {
          page.content.select(selection);
        }
      } else {
        page = createComparePage({ api, selection, openJob });
        void tracker.add(page);
        labShell.add(page, 'main');
      }
      labShell.activateById(page.id);
      return page;
    }
  });
  restorer?.restore(tracker, {
    command: COMPARE_COMMAND,
    args: page => ({ ...(page.content.selection ?? {}) }),
    name: () => 'compare'
  });
}
