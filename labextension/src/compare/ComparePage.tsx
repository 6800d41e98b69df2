/**
 * The comparison in JupyterLab's main area: one tab, whose selection the user can change.
 */

import * as React from 'react';

import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';

import { AICloudAPI } from '../api';
import { cloudIcon } from '../sidebar';
import { RunSelection } from '../tokens';
import { CompareView } from './CompareView';
import { describeSelection } from './selection';

export interface IComparePageOptions {
  api: AICloudAPI;
  selection: RunSelection | null;
  openJob: (id: string) => void;
}

/** The page's content: it keeps the selection and re-renders when it changes. */
export class CompareContent extends ReactWidget {
  constructor(private readonly _options: IComparePageOptions) {
    super();
    this._selection = _options.selection;
    this.addClass('aicloud-compare-page');
  }

  get selection(): RunSelection | null {
    return this._selection;
  }

  /** Show other runs; the tab's title follows. */
  select(selection: RunSelection | null): void {
    this._selection = selection;
    this._onSelect?.(selection);
    this.update();
  }

  /** Called with each new selection (the widget sets its title). */
  set onSelect(callback: (selection: RunSelection | null) => void) {
    this._onSelect = callback;
  }

  render(): JSX.Element {
    return (
      <CompareView
        api={this._options.api}
        selection={this._selection}
        onSelect={selection => this.select(selection)}
        onOpenJob={this._options.openJob}
      />
    );
  }

  private _selection: RunSelection | null;
  private _onSelect?: (selection: RunSelection | null) => void;
}

/** The id of the one comparison tab. */
export const COMPARE_PAGE_ID = 'aicloud-compare';

export function createComparePage(options: IComparePageOptions): MainAreaWidget<CompareContent> {
  const content = new CompareContent(options);
  const widget = new MainAreaWidget({ content });
  const title = (selection: RunSelection | null) => {
    widget.title.label = selection ? `Compare: ${describeSelection(selection)}` : 'Compare runs';
  };
  content.onSelect = title;
  title(options.selection);
  widget.id = COMPARE_PAGE_ID;
  widget.title.icon = cloudIcon;
  widget.title.caption = 'aicloud: runs side by side';
  widget.title.closable = true;
  return widget;
}
