/**
 * The API client against a recording fetch: URLs under the base URL, query strings, bodies,
 * server error messages, log offsets and the follow stream.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AICloudAPI, APIError, Fetcher, byteLength, joinURL, queryString } from '../src/api';
import { quotaLine } from '../src/format';

interface ICall {
  url: string;
  init: RequestInit;
}

function recorder(answer: (call: ICall) => Response): { api: AICloudAPI; calls: ICall[] } {
  const calls: ICall[] = [];
  const fetcher: Fetcher = async (url, init) => {
    const call = { url, init };
    calls.push(call);
    return answer(call);
  };
  return { api: new AICloudAPI('http://host/a%40b/', fetcher), calls };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers }
  });

test('joinURL escapes each segment and keeps the base', () => {
  assert.equal(joinURL('http://h/base', 'a b', 'c/d'), 'http://h/base/a%20b/c%2Fd');
  assert.equal(joinURL('http://h/base/', 'x'), 'http://h/base/x');
});

test('queryString repeats arrays and drops undefined values', () => {
  assert.equal(
    queryString({ status: ['queued', 'running'], kind: undefined, limit: 5 }),
    '?status=queued&status=running&limit=5'
  );
  assert.equal(queryString({}), '');
});

test('listJobs sends the filters under the base URL', async () => {
  const page = { jobs: [], total: 0, offset: 0, limit: 20, next_offset: null };
  const { api, calls } = recorder(() => json(page));
  assert.deepEqual(await api.listJobs({ status: ['running', 'queued'], kind: 'train', limit: 20 }), page);
  assert.equal(
    calls[0].url,
    'http://host/a%40b/aicloud/api/v1/jobs?status=running&status=queued&kind=train&limit=20'
  );
  assert.equal(calls[0].init.method, 'GET');
  assert.equal(calls[0].init.body, undefined);
});

test('listJobs and listSchedules ask the server for one owner; a refusal names the field', async () => {
  const page = { jobs: [], total: 0, offset: 0, limit: 100, next_offset: null };
  const { api, calls } = recorder(call =>
    call.url.includes('owner=bob')
      ? json({ message: "owner: only an aicloud admin may list another user's jobs", reason: 'Forbidden' }, 403)
      : json(page)
  );
  assert.deepEqual(await api.listJobs({ owner: 'a b', limit: 100 }), page);
  assert.equal(calls[0].url, 'http://host/a%40b/aicloud/api/v1/jobs?owner=a+b&limit=100');
  await assert.rejects(api.listJobs({ owner: 'bob' }), {
    name: 'APIError',
    status: 403,
    message: "owner: only an aicloud admin may list another user's jobs"
  });
  await api.listJobs({ owner: undefined });
  assert.equal(calls[2].url, 'http://host/a%40b/aicloud/api/v1/jobs');
  await api.listSchedules(10, 0, 'carol');
  assert.equal(calls[3].url, 'http://host/a%40b/aicloud/api/v1/schedules?owner=carol&limit=10&offset=0');
});

test('quotaLine reads the quota from GET /resources', () => {
  const quota = { limit: 1, groups: ['students'], used: 1, servers: 1, jobs: 0 };
  assert.equal(quotaLine(quota), 'GPUs in use: 1 of 1 (quota of students) · 1 in servers, 0 in jobs');
  assert.equal(
    quotaLine({ limit: null, groups: [], used: 2, servers: 0, jobs: 2 }),
    'GPUs in use: 2 (no quota) · 0 in servers, 2 in jobs'
  );
});

test('createSchedule posts the spec as JSON', async () => {
  const { api, calls } = recorder(() => json({ id: 'sch-1' }, 201));
  const spec = { cron: '0 6 * * 1-5', timezone: 'Europe/Berlin', job: { kind: 'notebook' as const, notebook: 'r.ipynb' } };
  assert.equal((await api.createSchedule(spec)).id, 'sch-1');
  assert.equal(calls[0].url, 'http://host/a%40b/aicloud/api/v1/schedules');
  assert.equal(calls[0].init.method, 'POST');
  assert.deepEqual(JSON.parse(String(calls[0].init.body)), spec);
  assert.deepEqual(calls[0].init.headers, { 'Content-Type': 'application/json' });
});

test('pause, run now, cancel, delete and parameters hit their routes', async () => {
  const { api, calls } = recorder(call =>
    call.init.method === 'DELETE' ? new Response(null, { status: 204 }) : json({ id: 'x' })
  );
  await api.setPaused('sch-1', true);
  await api.runSchedule('sch-1', { days: 7 });
  await api.cancelJob('job-1');
  await api.deleteJob('job-1');
  await api.notebookParameters('dir/report one.ipynb');
  const seen = calls.map(c => `${c.init.method} ${c.url.replace('http://host/a%40b/aicloud/api/v1', '')}`);
  assert.deepEqual(seen, [
    'PATCH /schedules/sch-1',
    'POST /schedules/sch-1/run',
    'POST /jobs/job-1/cancel',
    'DELETE /jobs/job-1',
    'GET /notebooks/parameters?path=dir%2Freport+one.ipynb'
  ]);
  assert.deepEqual(JSON.parse(String(calls[0].init.body)), { paused: true });
  assert.deepEqual(JSON.parse(String(calls[1].init.body)), { parameters: { days: 7 } });
});

test('an error answer becomes an APIError with the server message', async () => {
  const { api } = recorder(() =>
    json({ message: 'keep_last: Input should be greater than or equal to 1', reason: 'Bad Request' }, 400)
  );
  await assert.rejects(api.createSchedule({ cron: '* * * * *', job: {} }), (e: unknown) => {
    assert.ok(e instanceof APIError);
    assert.equal(e.status, 400);
    assert.equal(e.message, 'keep_last: Input should be greater than or equal to 1');
    return true;
  });
});

test('an error answer that is not JSON keeps its text, or its status', async () => {
  const text = recorder(() => new Response('proxy says no', { status: 502 }));
  await assert.rejects(text.api.status(), { name: 'APIError', message: 'proxy says no' });
  const empty = recorder(() => new Response('', { status: 503, statusText: 'Unavailable' }));
  await assert.rejects(empty.api.status(), { message: 'HTTP 503 Unavailable' });
});

test('rerun asks the service to rerun the job, and sends no spec back', async () => {
  const { api, calls } = recorder(() => json({ id: 'job-2' }, 201));
  const job = await api.rerunJob('job-1');
  assert.equal(job.id, 'job-2');
  assert.equal(calls[0].init.method, 'POST');
  assert.ok(calls[0].url.endsWith('/aicloud/api/v1/jobs/job-1/rerun'));
  assert.deepEqual(JSON.parse(String(calls[0].init.body)), {});
});

test('readLog returns the text and the offsets from the headers', async () => {
  const { api, calls } = recorder(
    () =>
      new Response('héllo\n', {
        headers: { 'X-Aicloud-Next-Offset': '107', 'X-Aicloud-Job-Status': 'running' }
      })
  );
  const chunk = await api.readLog('job-1', 100, { limit: 64 });
  assert.deepEqual(chunk, { text: 'héllo\n', nextOffset: 107, status: 'running' });
  assert.ok(calls[0].url.endsWith('/jobs/job-1/logs?offset=100&limit=64'));
  assert.equal(byteLength('héllo\n'), 7);
});

test('followLog streams pieces, counts bytes and splits no character', async () => {
  const bytes = new TextEncoder().encode('[rank0]: é\n[rank1]: b\n');
  // Cut the two bytes of é apart: the decoder must hold the first until the second comes.
  const parts = [bytes.slice(0, 10), bytes.slice(10, 11), bytes.slice(11)];
  const { api, calls } = recorder(
    () =>
      new Response(
        new ReadableStream({
          start(controller) {
            parts.forEach(p => controller.enqueue(p));
            controller.close();
          }
        })
      )
  );
  const seen: [string, number][] = [];
  const end = await api.followLog('job-1', 5, (text, offset) => seen.push([text, offset]));
  assert.equal(seen.map(s => s[0]).join(''), '[rank0]: é\n[rank1]: b\n');
  assert.equal(end, 5 + bytes.byteLength);
  assert.deepEqual(
    seen.map(s => s[1]),
    [15, 16, 5 + bytes.byteLength]
  );
  assert.ok(calls[0].url.endsWith('/jobs/job-1/logs?offset=5&follow=true'));
});

test('followLog stops when the signal aborts', async () => {
  const abort = new AbortController();
  const { api, calls } = recorder(call => {
    assert.equal(call.init.signal, abort.signal);
    abort.abort();
    throw new DOMException('aborted', 'AbortError');
  });
  await assert.rejects(api.followLog('job-1', 0, () => undefined, { signal: abort.signal }), {
    name: 'AbortError'
  });
  assert.equal(calls.length, 1);
});

test('outputURL is under the base URL and escapes the name', () => {
  const { api } = recorder(() => json({}));
  assert.equal(
    api.outputURL('job-1', 'report one.html'),
    'http://host/a%40b/aicloud/api/v1/jobs/job-1/outputs/report%20one.html'
  );
});
