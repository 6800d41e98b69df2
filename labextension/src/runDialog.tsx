/**
 * "Run as job": a dialog with the notebook's typed parameter fields (the schedule form's),
 * the job's name and tags. A value that does not parse keeps the dialog open, its field
 * marked and named; only the fields the user changed are sent.
 */

import * as React from 'react';

import { Dialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';

import { AICloudAPI } from './api';
import { messageOf } from './components/hooks';
import { ParamForm } from './components/ParamForm';
import { basename } from './format';
import { collectParameters, initialTexts } from './paramform';
import { INotebookParameter } from './tokens';

/** What the dialog asks the service to run. */
export interface IRunRequest {
  name: string | null;
  parameters: Record<string, unknown>;
  tags: string[];
}

/** Tags from the tags field: separated by commas or spaces, each once. */
export function parseTags(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/** The dialog's body: it loads the parameters and holds the fields' text. */
class RunForm extends ReactWidget {
  constructor(
    api: AICloudAPI,
    readonly path: string
  ) {
    super();
    this.addClass('aicloud-run-dialog');
    this._name = basename(path).replace(/\.ipynb$/, '');
    this.loaded = api.notebookParameters(path).then(
      answer => {
        this._parameters = answer.parameters;
        this._texts = initialTexts(answer.parameters);
        this.update();
      },
      error => {
        this._loadError = messageOf(error);
        this._parameters = [];
        this.update();
      }
    );
  }

  /** Settles once the notebook's parameters are read (or could not be). */
  readonly loaded: Promise<void>;

  get isLoaded(): boolean {
    return this._parameters !== null;
  }

  /** Whether every changed field parses; marks the fields that do not. */
  validate(): boolean {
    if (this._parameters === null) {
      return false;
    }
    this._errors = collectParameters(this._parameters, this._texts).errors;
    this.update();
    return Object.keys(this._errors).length === 0;
  }

  getValue(): IRunRequest {
    const { values } = collectParameters(this._parameters ?? [], this._texts);
    return { name: this._name.trim() || null, parameters: values, tags: parseTags(this._tags) };
  }

  render(): JSX.Element {
    const errors = Object.values(this._errors);
    return (
      <form aria-label="Run as job" onSubmit={e => e.preventDefault()}>
        <p className="aicloud-muted">
          Runs <code>{this.path}</code> with papermill as a job; the notebook is saved first.
        </p>
        <div className="aicloud-field">
          <label htmlFor="aicloud-run-name">Job name</label>
          <input
            id="aicloud-run-name"
            value={this._name}
            onChange={e => {
              this._name = e.target.value;
              this.update();
            }}
          />
        </div>
        <div className="aicloud-field">
          <label htmlFor="aicloud-run-tags">Tags (to compare runs later)</label>
          <input
            id="aicloud-run-tags"
            placeholder="e.g. lr-sweep"
            value={this._tags}
            spellCheck={false}
            onChange={e => {
              this._tags = e.target.value;
              this.update();
            }}
          />
        </div>
        {this._loadError && (
          <p className="aicloud-error" role="alert">
            The notebook's parameters could not be read: {this._loadError}
          </p>
        )}
        {this._parameters === null ? (
          <p className="aicloud-muted">Reading the notebook's parameters…</p>
        ) : (
          <ParamForm
            parameters={this._parameters}
            texts={this._texts}
            errors={this._errors}
            idPrefix="aicloud-run-param"
            onChange={(name, text) => {
              this._texts = { ...this._texts, [name]: text };
              if (name in this._errors) {
                const { [name]: _fixed, ...rest } = this._errors;
                this._errors = rest;
              }
              this.update();
            }}
          />
        )}
        {errors.length > 0 && (
          <p className="aicloud-error aicloud-run-errors">
            Fix {errors.length === 1 ? 'this field' : 'these fields'} to run the job.
          </p>
        )}
      </form>
    );
  }

  private _name: string;
  private _tags = '';
  private _parameters: INotebookParameter[] | null = null;
  private _texts: Record<string, string> = {};
  private _errors: Record<string, string> = {};
  private _loadError: string | null = null;
}

/** A dialog whose Run button (and Enter) does nothing until the fields parse. */
class RunDialog extends Dialog<IRunRequest> {
  constructor(private readonly _form: RunForm) {
    super({
      title: `Run ${basename(_form.path)} as a job`,
      body: _form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      defaultButton: 1,
      focusNodeSelector: 'input'
    });
    this.addClass('aicloud-run-dialog-window');
  }

  resolve(index?: number): void {
    if ((index ?? RUN_BUTTON) === RUN_BUTTON) {
      if (!this._form.isLoaded) {
        void this._form.loaded.then(() => this.resolve(index)); // Run pressed while reading
        return;
      }
      if (!this._form.validate()) {
        return;
      }
    }
    super.resolve(index);
  }
}

const RUN_BUTTON = 1;

/** Ask how to run the notebook at `path`; null when the user cancels. */
export async function askRunRequest(api: AICloudAPI, path: string): Promise<IRunRequest | null> {
  const dialog = new RunDialog(new RunForm(api, path));
  try {
    const result = await dialog.launch();
    return result.button.accept ? result.value : null;
  } finally {
    dialog.dispose();
  }
}
