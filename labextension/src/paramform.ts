/**
 * The schedule form's parameter fields: their initial text and how text becomes typed values.
 *
 * Fields hold text, typed by the notebook's parameter types (from
 * `GET /notebooks/parameters`): a `str` is typed as is, without quotes; numbers must parse;
 * lists and dicts are JSON. Only the fields a user changed are sent, so the notebook's own
 * defaults (even ones that are not literals) apply to the rest.
 */

import { INotebookParameter } from './tokens';

export type ParseResult = { ok: true; value: unknown } | { ok: false; error: string };

/** The text a field starts with: the default, as a user would type it. */
export function initialText(param: INotebookParameter): string {
  const value = param.default;
  if (value === null || value === undefined) {
    return param.type === 'str' || param.type === 'any' ? '' : param.default_source;
  }
  switch (param.type) {
    case 'str':
      return typeof value === 'string' ? value : String(value);
    case 'bool':
      return value ? 'true' : 'false';
    case 'int':
    case 'float':
      return String(value);
    default:
      return typeof value === 'string' ? value : JSON.stringify(value);
  }
}

/** The initial text of every field, by parameter name. */
export function initialTexts(params: INotebookParameter[]): Record<string, string> {
  return Object.fromEntries(params.map(p => [p.name, initialText(p)]));
}

function fail(param: INotebookParameter, expected: string, text: string): ParseResult {
  return {
    ok: false,
    error: `parameters.${param.name}: expected ${expected}, got ${JSON.stringify(text)}`
  };
}

/** Turn a field's text into a value of the parameter's type, or an error naming the field. */
export function parseField(param: INotebookParameter, text: string): ParseResult {
  const trimmed = text.trim();
  switch (param.type) {
    case 'str':
      return { ok: true, value: text };
    case 'int':
      return /^[-+]?\d+$/.test(trimmed)
        ? { ok: true, value: Number(trimmed) }
        : fail(param, 'an integer', text);
    case 'float': {
      const value = Number(trimmed);
      return trimmed !== '' && Number.isFinite(value)
        ? { ok: true, value }
        : fail(param, 'a number', text);
    }
    case 'bool':
      if (trimmed === 'true' || trimmed === 'false') {
        return { ok: true, value: trimmed === 'true' };
      }
      return fail(param, 'true or false', text);
    case 'list':
    case 'dict': {
      let value: unknown;
      try {
        value = JSON.parse(trimmed);
      } catch {
        return fail(param, param.type === 'list' ? 'a JSON list' : 'a JSON object', text);
      }
      const isList = Array.isArray(value);
      const isDict = value !== null && typeof value === 'object' && !isList;
      if ((param.type === 'list' && !isList) || (param.type === 'dict' && !isDict)) {
        return fail(param, param.type === 'list' ? 'a JSON list' : 'a JSON object', text);
      }
      return { ok: true, value };
    }
    default:
      // Untyped: JSON when it parses ("3", "[1]", "true"), else the text itself.
      try {
        return { ok: true, value: JSON.parse(trimmed) };
      } catch {
        return { ok: true, value: text };
      }
  }
}

/**
 * The values of the fields a user changed, and an error per field that does not parse.
 */
export function collectParameters(
  params: INotebookParameter[],
  texts: Record<string, string>
): { values: Record<string, unknown>; errors: Record<string, string> } {
  const values: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const param of params) {
    const text = texts[param.name];
    if (text === undefined || text === initialText(param)) {
      continue;
    }
    const result = parseField(param, text);
    if (result.ok) {
      values[param.name] = result.value;
    } else {
      errors[param.name] = result.error;
    }
  }
  return { values, errors };
}
