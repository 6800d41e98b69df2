/**
 * A job's parameters and duration in the lists.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as React from 'react';
import { renderToStaticMarkup } from 'react-dom/server';

import { JobSummary, parametersLine } from '../src/components/JobSummary';
import { IJob } from '../src/tokens';

test('parameters are written as typed, the fifth on counted', () => {
  assert.equal(parametersLine({ lr: 0.1, name: 'x', flags: [1, 2] }), 'lr=0.1, name=x, flags=[1,2]');
  assert.equal(parametersLine({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 }), 'a=1, b=2, c=3, d=4, +2 more');
  assert.equal(parametersLine({}), '');
});

test('the summary shows the parameters and the duration, or nothing', () => {
  const job = { spec: { parameters: { lr: 0.5 } }, duration_seconds: 125 } as unknown as IJob;
  const html = renderToStaticMarkup(<JobSummary job={job} />);
  assert.match(html, /<span class="aicloud-job-parameters"[^>]*>lr=0.5<\/span> · /);
  assert.match(html, /<span class="aicloud-job-duration" data-seconds="125">2m 05s<\/span>/);
  const bare = { spec: {}, duration_seconds: null } as unknown as IJob;
  assert.equal(renderToStaticMarkup(<JobSummary job={bare} />), '');
});
