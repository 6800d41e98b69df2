/**
 * Small formatting helpers shared by the panels (no JupyterLab imports: unit-tested in Node).
 */

/** "5s", "3m", "2h", "4d": how long ago `iso` was, from `now` (ms since the epoch). */
export function age(iso: string | null, now: number = Date.now()): string {
  if (!iso) {
    return '';
  }
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) {
    return `${seconds}s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)}h`;
  }
  return `${Math.floor(seconds / 86400)}d`;
}

/** "1.5 GiB": a byte count for people. */
export function bytes(count: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** The processes a job runs on: nodes × processes per node. */
export function ranks(spec: {
  resources?: { nodes?: number; procs_per_node?: number };
}): number {
  const resources = spec.resources ?? {};
  return (resources.nodes ?? 1) * (resources.procs_per_node ?? 1);
}

/** The rank of a log line (`[rank3]: ...`), or null for a line without a rank prefix. */
export function lineRank(line: string): number | null {
  const match = /^\[rank(\d+)\]:/.exec(line);
  return match ? Number(match[1]) : null;
}

/** The base name of a path (`a/b/c.ipynb` → `c.ipynb`). */
export function basename(path: string): string {
  const parts = path.split('/');
  return parts[parts.length - 1];
}

/** "GPUs in use: 1 of 2 (quota of students) · 1 in servers, 0 in jobs". */
export function quotaLine(quota: {
  limit: number | null;
  groups: string[];
  used: number;
  servers: number;
  jobs: number;
}): string {
  const of =
    quota.limit === null
      ? ' (no quota)'
      : ` of ${quota.limit}` + (quota.groups.length ? ` (quota of ${quota.groups.join(', ')})` : '');
  return `GPUs in use: ${quota.used}${of} · ${quota.servers} in servers, ${quota.jobs} in jobs`;
}
