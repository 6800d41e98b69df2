/**
 * Overlaid curves of one metric, one series per run, on a shared x axis (pure functions).
 */

import { IMetricPoint } from '../tokens';

/** One run's reported points, and its label in the legend. */
export interface IRunPoints {
  label: string;
  points: IMetricPoint[];
}

/** Aligned columns for the chart: x values and each run's y values on them. */
export interface IOverlay {
  /** `step` when the runs report steps, else seconds since each run's first point. */
  xLabel: 'step' | 'seconds';
  x: number[];
  labels: string[];
  ys: (number | null)[][];
}

/** The chief's points (rank 0): where several ranks report, one curve per run. */
function chiefPoints(points: IMetricPoint[]): IMetricPoint[] {
  return points.filter(p => p.rank === 0 || p.rank === undefined || p.rank === null);
}

/**
 * The runs' curves of `metric`. A run's value at an x it reported twice (a restart repeats
 * steps) is the last one; a run without a value at some x has a gap there.
 */
export function overlay(runs: IRunPoints[], metric: string): IOverlay {
  const chief = runs.map(run => chiefPoints(run.points).filter(p => typeof p[metric] === 'number'));
  const bySteps = chief.some(points => points.some(p => typeof p.step === 'number'));
  const perRun = chief.map(points => {
    const values = new Map<number, number>();
    const start = points.length ? points[0].time : 0;
    for (const point of points) {
      const x = bySteps ? point.step : point.time - start;
      if (typeof x === 'number') {
        values.set(x, point[metric] as number);
      }
    }
    return values;
  });
  const xs = new Set<number>();
  perRun.forEach(values => values.forEach((_, x) => xs.add(x)));
  const x = [...xs].sort((a, b) => a - b);
  return {
    xLabel: bySteps ? 'step' : 'seconds',
    x,
    labels: runs.map(run => run.label),
    ys: perRun.map(values => x.map(at => values.get(at) ?? null))
  };
}
