/**
 * Chart columns from the points a job reports and the samples the supervisor takes (pure
 * functions: unit-tested in Node).
 */

import { IMetricPoint, IUsagePoint } from '../tokens';

/**
 * Keys of a metric point that are bookkeeping, not metrics: a notebook job reports its cell
 * index (`cell`) and cells done of total (`step`, `total`) as progress.
 */
const NOT_METRICS = new Set(['time', 'rank', 'restart', 'step', 'total', 'cell']);

/** The metric names in the points, in first-seen order. */
export function metricNames(points: IMetricPoint[]): string[] {
  const names = new Set<string>();
  for (const point of points) {
    for (const key of Object.keys(point)) {
      if (!NOT_METRICS.has(key) && typeof point[key] === 'number') {
        names.add(key);
      }
    }
  }
  return [...names];
}

/** Columns for a chart: x values and, per series, the y values aligned on them. */
export interface IColumns {
  x: number[];
  labels: string[];
  ys: (number | null)[][];
}

/** Whether the points carry a step (then x is the step, else the time). */
export function hasSteps(points: IMetricPoint[]): boolean {
  return points.some(p => typeof p.step === 'number');
}

/**
 * One metric's curves, one series per rank, on the step (or the time) axis. Points of a
 * rank at the same x keep the last value (a restart reports the step again).
 */
export function metricColumns(points: IMetricPoint[], metric: string): IColumns {
  const byStep = hasSteps(points);
  const ranks = [...new Set(points.filter(p => typeof p[metric] === 'number').map(p => p.rank))];
  ranks.sort((a, b) => a - b);
  const rankIndex = new Map(ranks.map((r, i) => [r, i]));
  const rows = new Map<number, (number | null)[]>();
  for (const point of points) {
    const value = point[metric];
    const x = byStep ? point.step : point.time;
    if (typeof value !== 'number' || typeof x !== 'number') {
      continue;
    }
    let row = rows.get(x);
    if (!row) {
      row = ranks.map(() => null);
      rows.set(x, row);
    }
    row[rankIndex.get(point.rank)!] = value;
  }
  const x = [...rows.keys()].sort((a, b) => a - b);
  return {
    x,
    labels: ranks.map(r => (ranks.length === 1 ? metric : `${metric} (rank ${r})`)),
    ys: ranks.map((_, i) => x.map(at => rows.get(at)![i]))
  };
}

const MIB = 1024 * 1024;

/** The usage charts' columns: CPU %, RSS (MiB) and, per GPU, utilisation and memory. */
export function usageColumns(points: IUsagePoint[]): {
  cpu: IColumns;
  memory: IColumns;
  gpu: IColumns | null;
  gpuMemory: IColumns | null;
} {
  const x = points.map(p => p.t);
  const gpuIndexes = [...new Set(points.flatMap(p => p.gpus.map(g => g.index)))].sort(
    (a, b) => a - b
  );
  const gpuValue = (p: IUsagePoint, index: number, pick: (g: IUsagePoint['gpus'][0]) => number | null) => {
    const gpu = p.gpus.find(g => g.index === index);
    return gpu ? pick(gpu) : null;
  };
  const perGpu = (pick: (g: IUsagePoint['gpus'][0]) => number | null): IColumns => ({
    x,
    labels: gpuIndexes.map(i => `GPU ${i}`),
    ys: gpuIndexes.map(i => points.map(p => gpuValue(p, i, pick)))
  });
  return {
    cpu: { x, labels: ['CPU %'], ys: [points.map(p => p.cpu_percent)] },
    memory: { x, labels: ['RSS (MiB)'], ys: [points.map(p => p.rss_bytes / MIB)] },
    gpu: gpuIndexes.length ? perGpu(g => g.utilization_percent) : null,
    gpuMemory: gpuIndexes.length ? perGpu(g => g.memory_used_bytes / MIB) : null
  };
}
