/**
 * Labelled inputs for a notebook's typed parameters (presentational: state lives above).
 */

import * as React from 'react';

import { INotebookParameter } from '../tokens';

export interface IParamFormProps {
  parameters: INotebookParameter[];
  /** The text of each field, by parameter name. */
  texts: Record<string, string>;
  /** An error per field, by parameter name. */
  errors: Record<string, string>;
  onChange: (name: string, text: string) => void;
  /** Prefix of the input ids, unique on the page. */
  idPrefix?: string;
}

const NUMERIC = new Set(['int', 'float']);

export function ParamForm(props: IParamFormProps): JSX.Element {
  const prefix = props.idPrefix ?? 'aicloud-param';
  if (props.parameters.length === 0) {
    return (
      <p className="aicloud-muted aicloud-param-none">
        This notebook has no cell tagged <code>parameters</code>: it runs as it is.
      </p>
    );
  }
  return (
    <fieldset className="aicloud-params">
      <legend>Parameters</legend>
      {props.parameters.map(param => {
        const id = `${prefix}-${param.name}`;
        const text = props.texts[param.name] ?? '';
        const error = props.errors[param.name];
        const helpId = `${id}-help`;
        const errorId = `${id}-error`;
        const describedBy = [param.help ? helpId : '', error ? errorId : '']
          .filter(Boolean)
          .join(' ');
        const common = {
          id,
          name: param.name,
          'aria-invalid': error ? true : undefined,
          'aria-describedby': describedBy || undefined,
          'data-param-type': param.type
        };
        let input: JSX.Element;
        if (param.type === 'bool') {
          input = (
            <input
              {...common}
              type="checkbox"
              checked={text === 'true'}
              onChange={e => props.onChange(param.name, e.target.checked ? 'true' : 'false')}
            />
          );
        } else if (param.type === 'list' || param.type === 'dict') {
          input = (
            <textarea
              {...common}
              rows={2}
              value={text}
              spellCheck={false}
              onChange={e => props.onChange(param.name, e.target.value)}
            />
          );
        } else {
          input = (
            <input
              {...common}
              type="text"
              inputMode={NUMERIC.has(param.type) ? 'decimal' : undefined}
              value={text}
              placeholder={param.default === null ? param.default_source : undefined}
              onChange={e => props.onChange(param.name, e.target.value)}
            />
          );
        }
        return (
          <div className="aicloud-param" key={param.name}>
            <label htmlFor={id}>
              {param.name} <span className="aicloud-param-type">{param.type}</span>
            </label>
            {input}
            {param.help && (
              <span id={helpId} className="aicloud-muted aicloud-param-help">
                {param.help}
              </span>
            )}
            {error && (
              <span id={errorId} className="aicloud-error" role="alert">
                {error}
              </span>
            )}
          </div>
        );
      })}
    </fieldset>
  );
}
