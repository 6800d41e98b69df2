/**
 * The aicloud REST models, as `extension/aicloud/api/openapi.yaml` defines them.
 *
 * Only the fields the sidebar reads are typed; the server may send more.
 */

export type JobStatus =
  | 'queued'
  | 'starting'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cancelled';

export const JOB_STATUSES: JobStatus[] = [
  'queued',
  'starting',
  'running',
  'succeeded',
  'failed',
  'cancelled'
];

/** Statuses after which a job never changes again. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set([
  'succeeded',
  'failed',
  'cancelled'
]);

export type JobKind = 'train' | 'infer' | 'notebook' | 'serve' | 'command';

export interface IResourceRequest {
  nodes?: number;
  procs_per_node?: number;
  accelerator?: string | null;
  accelerator_count?: number;
  cpu?: number | null;
  memory?: string | null;
  profile?: string | null;
}

/** A job spec as submitted (defaults left out). */
export interface IJobSpec {
  name?: string | null;
  kind?: JobKind;
  framework?: 'torch' | 'tensorflow' | 'none';
  command?: string[] | null;
  notebook?: string | null;
  parameters?: Record<string, unknown>;
  kernel?: string | null;
  resources?: IResourceRequest;
  tags?: string[];
  origin?: { notebook: string; cell_id?: string | null } | null;
  [key: string]: unknown;
}

export interface IJob {
  id: string;
  name: string | null;
  owner: string;
  kind: JobKind;
  framework: string;
  backend: string;
  status: JobStatus;
  reason_code: string | null;
  reason: string | null;
  exit_code: number | null;
  tags: string[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempt_count: number;
  restarts: number;
  schedule_id: string | null;
  scheduled_for: string | null;
  pruned: boolean;
  spec: IJobSpec;
}

export interface IJobPage {
  jobs: IJob[];
  total: number;
  offset: number;
  limit: number;
  next_offset: number | null;
}

export interface IJobFilter {
  status?: JobStatus[];
  kind?: JobKind;
  tag?: string;
  notebook?: string;
  /** Only this user's jobs (another user's: admins only); none: the server's default. */
  owner?: string;
  limit?: number;
  offset?: number;
}

export interface IMetricPoint {
  time: number;
  rank: number;
  restart: number;
  step?: number;
  total?: number;
  [metric: string]: number | undefined;
}

export interface IMetrics {
  points: IMetricPoint[];
  next: number;
  latest: IMetricPoint | null;
  progress: { step: number | null; total: number; fraction: number } | null;
}

export interface IOutput {
  name: string;
  size: number;
  url: string;
}

/** One chunk of a log read without `follow`. */
export interface ILogChunk {
  text: string;
  nextOffset: number;
  status: JobStatus | null;
}

export type ParameterType =
  | 'int'
  | 'float'
  | 'bool'
  | 'str'
  | 'list'
  | 'dict'
  | 'any';

export interface INotebookParameter {
  name: string;
  type: ParameterType;
  default: unknown;
  default_source: string;
  help: string;
}

export interface INotebookParameters {
  path: string;
  kernel: string | null;
  parameters: INotebookParameter[];
}

export interface IScheduleSpec {
  name?: string | null;
  job: IJobSpec;
  cron: string;
  timezone?: string;
  paused?: boolean;
  max_concurrent_runs?: number;
  overlap?: 'queue' | 'skip';
  catch_up?: 'none' | 'latest' | 'all';
  keep_last?: number | null;
  snapshot?: boolean;
}

export interface ISchedule {
  id: string;
  name: string | null;
  owner: string;
  job: IJobSpec;
  cron: string;
  timezone: string;
  paused: boolean;
  max_concurrent_runs: number;
  overlap: string;
  catch_up: string;
  keep_last: number | null;
  snapshot: boolean;
  created_at: string;
  updated_at: string;
  last_tick_at: string | null;
  next_tick_at: string | null;
  missed_ticks: number;
}

export interface ISchedulePage {
  schedules: ISchedule[];
  total: number;
  offset: number;
  limit: number;
}

export interface IServiceStatus {
  version: string;
  mode: 'standalone' | 'hub';
  user: string;
  /** Whether the caller may list and manage other users' jobs (hub admins). */
  admin: boolean;
  backends: string[];
}

export interface IGpu {
  type: string;
  index: number;
  model: string;
  memory_bytes?: number;
  memory_used_bytes?: number;
  utilization_percent?: number | null;
}

export interface IResources {
  cpu: { cores: number; usable: number };
  memory: { total_bytes: number; available_bytes: number };
  gpus: IGpu[];
  tpu: { type?: string; devices?: string[] } | null;
  backends: { name: string; available: boolean; [key: string]: unknown }[];
  /** The caller's GPU quota and use (hub with a catalog); null otherwise. */
  quota: IQuota | null;
}

export interface IQuota {
  /** Most GPUs at once; null: no quota applies. */
  limit: number | null;
  groups: string[];
  used: number;
  servers: number;
  jobs: number;
}

// The job page (issue 18): the service's additions to the job model and its new routes.

/** A serve job's endpoint, once it serves. */
export interface IEndpoint {
  url: string;
  infer_url: string;
  model: string;
}

/** One attempt of a job, as `GET /jobs/{id}` lists them. */
export interface IAttempt {
  number: number;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  reason_code: string | null;
  reason: string | null;
  restarts: number;
}

/** A job with the fields the job page reads beyond the sidebar's. */
export interface IJobDetails extends IJob {
  attempts?: IAttempt[];
  /** A notebook job's papermill parameters, else the train function's; `{}` if none. */
  parameters?: Record<string, unknown>;
  /** Null until started; live while running. */
  duration_seconds?: number | null;
  /** The notebook the job was launched from, relative to the user's root. */
  origin?: string | null;
  endpoint?: IEndpoint | null;
}

/** One sample of a job's process tree (`GET /jobs/{id}/usage`). */
export interface IUsagePoint {
  /** Epoch seconds. */
  t: number;
  attempt: number;
  /** 100 = one core. */
  cpu_percent: number;
  rss_bytes: number;
  gpus: {
    index: number;
    utilization_percent: number | null;
    memory_used_bytes: number;
    memory_total_bytes: number;
  }[];
}

export interface IUsage {
  points: IUsagePoint[];
  next: number;
  interval_seconds: number;
}

/** One line of a log window (`GET /jobs/{id}/log-lines`). */
export interface ILogLine {
  /** 0-based line number in the whole log. */
  n: number;
  rank: number | null;
  /** The text, with its ANSI escapes. */
  text: string;
}

export interface ILogLines {
  /** Lines matching the filter. */
  total: number;
  start: number;
  lines: ILogLine[];
  status: JobStatus;
}

/** A filter of a job's log: one rank and/or a case-insensitive substring. */
export interface ILogFilter {
  rank?: number | null;
  q?: string;
}

/** A serve job's request statistics (`GET /jobs/{id}/serving`). */
export interface IServing {
  endpoint: IEndpoint | null;
  requests: number;
  errors: number;
  latency_ms: { p50: number | null; p99: number | null };
  batch_sizes: { le: number | string; count: number }[];
  queue_depth: number | null;
}

// Runs side by side and the machine live (issue 18): `GET /jobs/compare`, `GET /resources/usage`.

/** Which runs to compare: some ids, the runs of a schedule, or those with a tag. */
export type RunSelection = { ids: string[] } | { schedule_id: string } | { tag: string };

/** One run of a comparison. */
export interface ICompareRun {
  id: string;
  name: string | null;
  status: JobStatus;
  parameters: Record<string, unknown>;
  duration_seconds: number | null;
  /** The last value of each metric the run reported. */
  final_metrics: Record<string, number | null>;
  created_at: string;
}

export interface IComparison {
  runs: ICompareRun[];
  /** The parameter names whose values differ between the runs. */
  parameters: string[];
  /** Every metric name the runs reported. */
  metrics: string[];
}

/** One GPU of the machine, now. */
export interface IMachineGpu {
  index: number;
  model: string;
  utilization_percent: number | null;
  memory_used_bytes: number;
  memory_total_bytes: number;
}

/** A user's GPU use against the quota of the profile they run. */
export interface IUserUsage {
  user: string;
  gpus_in_use: number;
  gpu_quota: number | null;
  jobs_running: number;
}

/** The machine now (`GET /resources/usage`); a user sees only their own row of `users`. */
export interface IMachineUsage {
  /** Epoch seconds. */
  t: number;
  /** 100 = one core. */
  cpu_percent: number;
  cores: number;
  memory_used_bytes: number;
  memory_total_bytes: number;
  gpus: IMachineGpu[];
  users: IUserUsage[];
}
