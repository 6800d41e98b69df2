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
