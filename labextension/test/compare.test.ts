/**
 * Runs side by side: the selection bar's parsing, the table's columns and cells, the overlaid
 * curves' alignment, and the Resources tab's kept samples.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AICloudAPI } from '../src/api';
import { overlay } from '../src/compare/curves';
import {
  describeSelection,
  parseSelection,
  selectionFields,
  selectionOfArgs
} from '../src/compare/selection';
import { legendLabels, metricText, parameterColumns, parameterText } from '../src/compare/table';
import { addSample, gpuColumns, KEPT_SAMPLES, quotaText } from '../src/resources/history';
import { IComparison, IMachineUsage, IMetricPoint } from '../src/tokens';

test('the selection bar names the field it refuses', () => {
  assert.deepEqual(parseSelection('ids', ' a, b  c,a '), { ok: true, selection: { ids: ['a', 'b', 'c'] } });
  assert.deepEqual(parseSelection('ids', ' , '), { ok: false, error: 'ids: give at least one job id' });
  const many = Array.from({ length: 51 }, (_, i) => `j${i}`).join(',');
  assert.deepEqual(parseSelection('ids', many), { ok: false, error: 'ids: at most 50 runs, got 51' });
  assert.deepEqual(parseSelection('tag', ' sweep '), { ok: true, selection: { tag: 'sweep' } });
  assert.deepEqual(parseSelection('tag', ''), { ok: false, error: 'tag: give a tag' });
  assert.deepEqual(parseSelection('schedule_id', 's1'), { ok: true, selection: { schedule_id: 's1' } });
  assert.deepEqual(selectionFields({ ids: ['a', 'b'] }), { kind: 'ids', text: 'a, b' });
  assert.equal(describeSelection({ tag: 'lr' }), 'tag lr');
  assert.equal(describeSelection({ ids: ['a'] }), '1 run');
  assert.deepEqual(selectionOfArgs({ ids: 'x,y' }), { ids: ['x', 'y'] });
  assert.deepEqual(selectionOfArgs({ schedule_id: 's' }), { schedule_id: 's' });
  assert.equal(selectionOfArgs({}), null);
});

const comparison: IComparison = {
  runs: [
    { id: 'a1', name: 'train', status: 'succeeded', parameters: { lr: 0.1, opt: 'adam', n: 3 }, duration_seconds: 5, final_metrics: { loss: 0.123456 }, created_at: '' },
    { id: 'b2', name: 'train', status: 'succeeded', parameters: { lr: 0.01, opt: 'adam', n: 3 }, duration_seconds: 6, final_metrics: {}, created_at: '' },
    { id: 'c3', name: 'other', status: 'running', parameters: { opt: 'adam', n: 3, lr: 1 }, duration_seconds: null, final_metrics: { loss: 2 }, created_at: '' }
  ],
  parameters: ['lr'],
  metrics: ['loss']
};

test('the table shows differing parameters first, values as typed', () => {
  assert.deepEqual(parameterColumns(comparison), [
    { name: 'lr', differs: true },
    { name: 'n', differs: false },
    { name: 'opt', differs: false }
  ]);
  assert.equal(parameterText('adam'), 'adam');
  assert.equal(parameterText([1, 2]), '[1,2]');
  assert.equal(parameterText(undefined), '–');
  assert.equal(metricText(0.123456), '0.1235');
  assert.equal(metricText(undefined), '–');
  // Runs of the same name are told apart by their differing parameters.
  assert.deepEqual(legendLabels(comparison), ['train (lr=0.1)', 'train (lr=0.01)', 'other']);
});

test('curves align on the steps of every run, gaps where a run has none', () => {
  const point = (step: number, loss: number, rank = 0): IMetricPoint => ({ time: 100 + step, rank, restart: 0, step, loss });
  const columns = overlay(
    [
      { label: 'a', points: [point(1, 1), point(2, 0.5), point(2, 0.4), point(1, 9, 1)] },
      { label: 'b', points: [point(2, 0.8), point(3, 0.7)] }
    ],
    'loss'
  );
  assert.equal(columns.xLabel, 'step');
  assert.deepEqual(columns.x, [1, 2, 3]);
  assert.deepEqual(columns.ys, [
    [1, 0.4, null],
    [null, 0.8, 0.7]
  ]);
  // Without steps: seconds since each run's first point.
  const timed = overlay([{ label: 'a', points: [{ time: 50, rank: 0, restart: 0, acc: 1 }, { time: 52, rank: 0, restart: 0, acc: 2 }] }], 'acc');
  assert.equal(timed.xLabel, 'seconds');
  assert.deepEqual(timed.x, [0, 2]);
});

test('the Resources tab keeps the latest samples and charts each GPU', () => {
  const sample = (t: number, gpus: IMachineUsage['gpus'] = []): IMachineUsage => ({
    t, cpu_percent: 50, cores: 2, memory_used_bytes: 1, memory_total_bytes: 2, gpus, users: []
  });
  let samples: IMachineUsage[] = [];
  for (let t = 0; t < KEPT_SAMPLES + 5; t++) {
    samples = addSample(samples, sample(t));
  }
  assert.equal(samples.length, KEPT_SAMPLES);
  assert.equal(samples[0].t, 5);
  assert.equal(addSample(samples, sample(3)), samples); // an old answer adds nothing
  const gpu = (index: number, utilization_percent: number | null) => ({ index, model: 'T4', utilization_percent, memory_used_bytes: 0, memory_total_bytes: 1 });
  const columns = gpuColumns([sample(1, [gpu(0, 10), gpu(1, null)]), sample(2, [gpu(0, 20)])]);
  assert.deepEqual(columns.labels, ['GPU 0', 'GPU 1']);
  assert.deepEqual(columns.ys, [[10, 20], [null, null]]);
  assert.equal(quotaText(1, 2), '1 of 2');
  assert.equal(quotaText(0, null), '0 (no quota)');
});

test('compare and resourcesUsage ask their routes under the base URL', async () => {
  const urls: string[] = [];
  const api = new AICloudAPI('http://host/a%40b/', async url => {
    urls.push(url);
    return new Response('{"runs": [], "parameters": [], "metrics": []}', { status: 200 });
  });
  await api.compare({ ids: ['a', 'b'] });
  await api.compare({ tag: 'lr sweep' });
  await api.compare({ schedule_id: 's1' });
  await api.resourcesUsage();
  assert.deepEqual(urls, [
    'http://host/a%40b/aicloud/api/v1/jobs/compare?ids=a%2Cb',
    'http://host/a%40b/aicloud/api/v1/jobs/compare?tag=lr+sweep',
    'http://host/a%40b/aicloud/api/v1/jobs/compare?schedule_id=s1',
    'http://host/a%40b/aicloud/api/v1/resources/usage'
  ]);
});
