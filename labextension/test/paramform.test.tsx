/**
 * The parameter form: initial texts from defaults, typed parsing with errors naming the field,
 * only changed fields sent, and the rendered inputs with their labels.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as React from 'react';
import { renderToStaticMarkup } from 'react-dom/server';

import { ParamForm } from '../src/components/ParamForm';
import { collectParameters, initialText, initialTexts, parseField } from '../src/paramform';
import { INotebookParameter, ParameterType } from '../src/tokens';

const param = (
  name: string,
  type: ParameterType,
  value: unknown,
  source = JSON.stringify(value),
  help = ''
): INotebookParameter => ({ name, type, default: value, default_source: source, help });

const PARAMS = [
  param('region', 'str', 'us', '"us"', 'where to report on'),
  param('days', 'int', 30),
  param('growth', 'float', 0.5),
  param('draft', 'bool', false, 'False'),
  param('flags', 'list', [1, 2]),
  param('opts', 'dict', { a: 1 }),
  param('when', 'any', null, 'datetime.now()')
];

test('initial texts are the defaults as a user types them', () => {
  assert.deepEqual(initialTexts(PARAMS), {
    region: 'us',
    days: '30',
    growth: '0.5',
    draft: 'false',
    flags: '[1,2]',
    opts: '{"a":1}',
    when: ''
  });
  assert.equal(initialText(param('n', 'int', null, 'compute()')), 'compute()');
});

test('each type parses its text or names the field', () => {
  const [region, days, growth, draft, flags, opts, when] = PARAMS;
  assert.deepEqual(parseField(region, ' eu '), { ok: true, value: ' eu ' });
  assert.deepEqual(parseField(days, '-7'), { ok: true, value: -7 });
  assert.deepEqual(parseField(days, '7.5'), {
    ok: false,
    error: 'parameters.days: expected an integer, got "7.5"'
  });
  assert.deepEqual(parseField(growth, '1e-3'), { ok: true, value: 0.001 });
  assert.deepEqual(parseField(growth, ''), {
    ok: false,
    error: 'parameters.growth: expected a number, got ""'
  });
  assert.deepEqual(parseField(draft, 'true'), { ok: true, value: true });
  assert.equal(parseField(draft, 'yes').ok, false);
  assert.deepEqual(parseField(flags, '["a"]'), { ok: true, value: ['a'] });
  assert.deepEqual(parseField(flags, '{"a": 1}'), {
    ok: false,
    error: 'parameters.flags: expected a JSON list, got "{\\"a\\": 1}"'
  });
  assert.deepEqual(parseField(opts, '{"b": [1]}'), { ok: true, value: { b: [1] } });
  assert.equal(parseField(opts, '[1]').ok, false);
  assert.deepEqual(parseField(when, '3'), { ok: true, value: 3 });
  assert.deepEqual(parseField(when, 'tomorrow'), { ok: true, value: 'tomorrow' });
});

test('only changed fields are sent, and every bad field is reported', () => {
  const texts = { ...initialTexts(PARAMS), region: 'eu', days: 'seven', draft: 'true', growth: 'x' };
  assert.deepEqual(collectParameters(PARAMS, texts), {
    values: { region: 'eu', draft: true },
    errors: {
      days: 'parameters.days: expected an integer, got "seven"',
      growth: 'parameters.growth: expected a number, got "x"'
    }
  });
  assert.deepEqual(collectParameters(PARAMS, initialTexts(PARAMS)), { values: {}, errors: {} });
});

test('the form renders a labelled input per parameter, typed by kind', () => {
  const html = renderToStaticMarkup(
    <ParamForm
      parameters={PARAMS}
      texts={{ ...initialTexts(PARAMS), draft: 'true' }}
      errors={{ days: 'parameters.days: expected an integer, got "seven"' }}
      onChange={() => undefined}
      idPrefix="p"
    />
  );
  for (const p of PARAMS) {
    assert.match(html, new RegExp(`<label for="p-${p.name}">${p.name} `));
    assert.match(html, new RegExp(`id="p-${p.name}"`));
  }
  assert.match(html, /<input id="p-draft" name="draft" data-param-type="bool" type="checkbox" checked=""/);
  assert.match(html, /<textarea id="p-flags"[^>]*>\[1,2\]<\/textarea>/);
  assert.match(html, /id="p-days" name="days" aria-invalid="true" aria-describedby="p-days-error"/);
  assert.match(html, /<span id="p-days-error" class="aicloud-error" role="alert">parameters.days: expected an integer, got &quot;seven&quot;<\/span>/);
  assert.match(html, /aria-describedby="p-region-help"/);
  assert.match(html, /placeholder="datetime.now\(\)"/);
});

test('a notebook without parameters says so', () => {
  const html = renderToStaticMarkup(
    <ParamForm parameters={[]} texts={{}} errors={{}} onChange={() => undefined} />
  );
  assert.match(html, /no cell tagged <code>parameters<\/code>/);
});
