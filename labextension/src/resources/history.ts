/**
 * The machine's recent samples, kept in the browser while the Resources tab is open, as
 * chart columns (pure functions).
 */

import { IMachineUsage } from '../tokens';

/** Samples kept: 10 minutes at one every 2 s. */
export const KEPT_SAMPLES = 300;

const GIB = 1024 ** 3;

/** `samples` with `sample` added (a repeated time replaces nothing), the oldest dropped. */
export function addSample(samples: IMachineUsage[], sample: IMachineUsage): IMachineUsage[] {
  if (samples.length && samples[samples.length - 1].t >= sample.t) {
    return samples;
  }
  const next = [...samples, sample];
  return next.length > KEPT_SAMPLES ? next.slice(next.length - KEPT_SAMPLES) : next;
}

export interface IMachineColumns {
  x: number[];
  labels: string[];
  ys: (number | null)[][];
}

/** Busy cores (CPU % / 100) and memory used in GiB, on the time axis. */
export function cpuMemoryColumns(samples: IMachineUsage[]): {
  cpu: IMachineColumns;
  memory: IMachineColumns;
} {
  const x = samples.map(s => s.t);
  return {
    cpu: { x, labels: ['busy cores'], ys: [samples.map(s => s.cpu_percent / 100)] },
    memory: { x, labels: ['memory used (GiB)'], ys: [samples.map(s => s.memory_used_bytes / GIB)] }
  };
}

/** Each GPU's utilisation in percent (null where NVML gave none), on the time axis. */
export function gpuColumns(samples: IMachineUsage[]): IMachineColumns {
  const indexes = [...new Set(samples.flatMap(s => s.gpus.map(g => g.index)))].sort((a, b) => a - b);
  return {
    x: samples.map(s => s.t),
    labels: indexes.map(i => `GPU ${i}`),
    ys: indexes.map(i =>
      samples.map(s => s.gpus.find(g => g.index === i)?.utilization_percent ?? null)
    )
  };
}

/** "1 of 2", "1 (no quota)": a user's GPUs in use against the quota of their profile. */
export function quotaText(inUse: number, quota: number | null): string {
  return quota === null ? `${inUse} (no quota)` : `${inUse} of ${quota}`;
}
