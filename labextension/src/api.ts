/**
 * A typed client of the aicloud REST API (`<base URL>aicloud/api/v1/`).
 *
 * It has one method per route and no JupyterLab imports: the browser build hands it
 * `ServerConnection.makeRequest` (see `connection.ts`), which adds the token or the XSRF
 * header, and the unit tests hand it a recording fetch.
 */

import {
  IJob,
  IJobFilter,
  IJobPage,
  IJobSpec,
  ILogChunk,
  ILogFilter,
  ILogLines,
  IMetrics,
  INotebookParameters,
  IOutput,
  IResources,
  ISchedule,
  IScheduleSpec,
  ISchedulePage,
  IServiceStatus,
  IServing,
  IUsage,
  JobStatus,
  IComparison,
  IMachineUsage,
  RunSelection
} from './tokens';

/** Performs one HTTP request, like `fetch`. */
export type Fetcher = (url: string, init: RequestInit) => Promise<Response>;

/** The path of the API under the server's base URL. */
export const API_PATH = 'aicloud/api/v1';

/** An error answer of the service, carrying its status and its `message`. */
export class APIError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'APIError';
  }
}

type Query = Record<string, string | number | boolean | string[] | undefined>;

/** The message of an error answer: the JSON `message`, else the body, else the status. */
async function errorMessage(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && typeof body.message === 'string' && body.message) {
      return body.message;
    }
  } catch {
    // not JSON: fall through to the text
  }
  const reason = response.statusText ? ` ${response.statusText}` : '';
  return text.trim() || `HTTP ${response.status}${reason}`;
}

/** Join a base URL (ending in `/` or not) and path segments, escaping each segment. */
export function joinURL(base: string, ...segments: string[]): string {
  const head = base.endsWith('/') ? base : `${base}/`;
  return head + segments.map(s => encodeURIComponent(s)).join('/');
}

/** A query string (`?a=1&b=2&b=3`) from the defined values, or '' when there are none. */
export function queryString(query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) {
      continue;
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      params.append(key, String(item));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** The aicloud job service, seen from the browser. */
export class AICloudAPI {
  /**
   * @param baseUrl The Jupyter server's base URL, e.g. `http://host/user/ann/`.
   * @param fetcher How to send a request (adds authentication).
   */
  constructor(
    readonly baseUrl: string,
    private readonly fetcher: Fetcher
  ) {}

  /** The absolute URL of an API path such as `['jobs', id]`. */
  url(segments: string[], query?: Query): string {
    return joinURL(this.baseUrl, ...API_PATH.split('/'), ...segments) + queryString(query);
  }

  /** Send a request; an error status becomes an {@link APIError} with the server's message. */
  async request(
    method: string,
    segments: string[],
    options: { query?: Query; body?: unknown; signal?: AbortSignal } = {}
  ): Promise<Response> {
    const init: RequestInit = { method, signal: options.signal };
    if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const response = await this.fetcher(this.url(segments, options.query), init);
    if (!response.ok) {
      throw new APIError(response.status, await errorMessage(response));
    }
    return response;
  }

  private async json<T>(
    method: string,
    segments: string[],
    options: { query?: Query; body?: unknown } = {}
  ): Promise<T> {
    const response = await this.request(method, segments, options);
    return (await response.json()) as T;
  }

  // Jobs

  /** A page of jobs, newest first. */
  listJobs(filter: IJobFilter = {}): Promise<IJobPage> {
    return this.json('GET', ['jobs'], { query: { ...filter } });
  }

  getJob(id: string): Promise<IJob> {
    return this.json('GET', ['jobs', id]);
  }

  createJob(spec: IJobSpec): Promise<IJob> {
    return this.json('POST', ['jobs'], { body: spec });
  }

  cancelJob(id: string): Promise<IJob> {
    return this.json('POST', ['jobs', id, 'cancel']);
  }

  async deleteJob(id: string): Promise<void> {
    await this.request('DELETE', ['jobs', id]);
  }

  /**
   * A new job with the spec of job `id`, made by the service from its stored spec: the
   * values that the API shows as `***` (secret env variables) keep their real values.
   */
  rerunJob(id: string): Promise<IJob> {
    return this.json('POST', ['jobs', id, 'rerun'], { body: {} });
  }

  /** Up to `limit` bytes of the log from `offset`, and where to continue. */
  async readLog(
    id: string,
    offset = 0,
    options: { limit?: number; rank?: number } = {}
  ): Promise<ILogChunk> {
    const response = await this.request('GET', ['jobs', id, 'logs'], {
      query: { offset, limit: options.limit, rank: options.rank }
    });
    const text = await response.text();
    const next = response.headers.get('X-Aicloud-Next-Offset');
    return {
      text,
      nextOffset: next === null ? offset + byteLength(text) : Number(next),
      status: response.headers.get('X-Aicloud-Job-Status') as JobStatus | null
    };
  }

  /**
   * Follow the log from `offset` until the job ends or `signal` aborts; `onText` gets each
   * piece of text and the byte offset after it (pass that offset to resume).
   */
  async followLog(
    id: string,
    offset: number,
    onText: (text: string, offset: number) => void,
    options: { rank?: number; signal?: AbortSignal } = {}
  ): Promise<number> {
    const response = await this.request('GET', ['jobs', id, 'logs'], {
      query: { offset, follow: true, rank: options.rank },
      signal: options.signal
    });
    if (!response.body) {
      const text = await response.text();
      offset += byteLength(text);
      if (text) {
        onText(text, offset);
      }
      return offset;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        offset += value.byteLength;
        const text = decoder.decode(value, { stream: true });
        if (text) {
          onText(text, offset);
        }
      }
    } finally {
      reader.releaseLock();
    }
    return offset;
  }

  /** Metrics reported from point `since` on (the latest `limit` of them). */
  metrics(id: string, since = 0, limit?: number): Promise<IMetrics> {
    return this.json('GET', ['jobs', id, 'metrics'], { query: { since, limit } });
  }

  async outputs(id: string): Promise<IOutput[]> {
    const answer = await this.json<{ outputs: IOutput[] }>('GET', ['jobs', id, 'outputs']);
    return answer.outputs;
  }

  /** The download URL of a job's output file. */
  outputURL(id: string, name: string): string {
    return this.url(['jobs', id, 'outputs', name]);
  }

  /** Lines `start` to `start + count` of a job's log, filtered by rank and substring. */
  logLines(
    id: string,
    start: number,
    count: number,
    filter: ILogFilter = {},
    signal?: AbortSignal
  ): Promise<ILogLines> {
    const query = { start, count, rank: filter.rank ?? undefined, q: filter.q || undefined };
    return this.request('GET', ['jobs', id, 'log-lines'], { query, signal }).then(
      r => r.json() as Promise<ILogLines>
    );
  }

  /** Resource samples of a job's processes from sample `since` on. */
  usage(id: string, since = 0, limit?: number): Promise<IUsage> {
    return this.json('GET', ['jobs', id, 'usage'], { query: { since, limit } });
  }

  /** A serve job's request statistics (409 unless it serves). */
  serving(id: string): Promise<IServing> {
    return this.json('GET', ['jobs', id, 'serving']);
  }

  // Notebooks

  notebookParameters(path: string): Promise<INotebookParameters> {
    return this.json('GET', ['notebooks', 'parameters'], { query: { path } });
  }

  // Schedules

  listSchedules(limit = 100, offset = 0, owner?: string): Promise<ISchedulePage> {
    return this.json('GET', ['schedules'], { query: { owner, limit, offset } });
  }

  getSchedule(id: string): Promise<ISchedule> {
    return this.json('GET', ['schedules', id]);
  }

  createSchedule(spec: IScheduleSpec): Promise<ISchedule> {
    return this.json('POST', ['schedules'], { body: spec });
  }

  updateSchedule(id: string, changes: Partial<IScheduleSpec>): Promise<ISchedule> {
    return this.json('PATCH', ['schedules', id], { body: changes });
  }

  setPaused(id: string, paused: boolean): Promise<ISchedule> {
    return this.updateSchedule(id, { paused });
  }

  async deleteSchedule(id: string): Promise<void> {
    await this.request('DELETE', ['schedules', id]);
  }

  runSchedule(id: string, parameters?: Record<string, unknown>): Promise<IJob> {
    return this.json('POST', ['schedules', id, 'run'], {
      body: parameters ? { parameters } : {}
    });
  }

  scheduleRuns(id: string, limit = 20, offset = 0): Promise<IJobPage> {
    return this.json('GET', ['schedules', id, 'runs'], { query: { limit, offset } });
  }

  // The service

  status(): Promise<IServiceStatus> {
    return this.json('GET', ['status']);
  }

  resources(): Promise<IResources> {
    return this.json('GET', ['resources']);
  }

  // Runs side by side and the machine live (issue 18)

  /** The selected runs' parameters (those that differ named), durations and final metrics. */
  compare(selection: RunSelection): Promise<IComparison> {
    const query = 'ids' in selection ? { ids: selection.ids.join(',') } : { ...selection };
    return this.json('GET', ['jobs', 'compare'], { query });
  }

  /** The machine now: CPU, memory, GPUs, and each visible user's GPU use against quota. */
  resourcesUsage(): Promise<IMachineUsage> {
    return this.json('GET', ['resources', 'usage']);
  }
}

/** The UTF-8 length of a string, in bytes (log offsets count bytes). */
export function byteLength(text: string): number {
  return new TextEncoder().encode(text).byteLength;
}
