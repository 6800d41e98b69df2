/**
 * A small line chart of one metric a job reported with `aicloud.runtime.report()`.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { IMetricPoint, IMetrics, TERMINAL_STATUSES } from '../tokens';
import { ErrorLine, messageOf } from './hooks';

const FIXED = new Set(['time', 'rank', 'restart', 'step', 'total']);
const MAX_POINTS = 5000;
const WIDTH = 280;
const HEIGHT = 90;

/** The metric names in the points, in first-seen order. */
export function metricNames(points: IMetricPoint[]): string[] {
  const names: string[] = [];
  for (const point of points) {
    for (const key of Object.keys(point)) {
      if (!FIXED.has(key) && typeof point[key] === 'number' && !names.includes(key)) {
        names.push(key);
      }
    }
  }
  return names;
}

export function MetricsChart(props: {
  api: AICloudAPI;
  jobId: string;
  status: string;
}): JSX.Element | null {
  const [points, setPoints] = React.useState<IMetricPoint[]>([]);
  const [progress, setProgress] = React.useState<IMetrics['progress']>(null);
  const [metric, setMetric] = React.useState('');
  const [error, setError] = React.useState<string | null>(null);
  const done = TERMINAL_STATUSES.has(props.status);

  React.useEffect(() => {
    let alive = true;
    let since = 0;
    let timer: number | undefined;
    const load = async () => {
      try {
        const answer = await props.api.metrics(props.jobId, since);
        if (!alive) {
          return;
        }
        if (answer.points.length) {
          setPoints(old => [...old, ...answer.points].slice(-MAX_POINTS));
          setProgress(answer.progress);
        }
        since = answer.next;
        setError(null);
      } catch (e) {
        if (alive) {
          setError(messageOf(e));
        }
      }
      if (alive && !done) {
        timer = window.setTimeout(load, 2000);
      }
    };
    void load();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [props.jobId, done]);

  const names = metricNames(points);
  const name = metric && names.includes(metric) ? metric : names[0];
  if (!points.length && !error) {
    return null;
  }
  const series = points
    .map((p, i) => ({ x: p.step ?? i, y: name ? p[name] : undefined }))
    .filter((p): p is { x: number; y: number } => typeof p.y === 'number' && isFinite(p.y));
  const xs = series.map(p => p.x);
  const ys = series.map(p => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => (x1 === x0 ? WIDTH / 2 : ((x - x0) / (x1 - x0)) * WIDTH);
  const sy = (y: number) => (y1 === y0 ? HEIGHT / 2 : HEIGHT - ((y - y0) / (y1 - y0)) * HEIGHT);
  const path = series.map(p => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
  const last = series[series.length - 1];
  return (
    <section className="aicloud-metrics" aria-label="Metrics">
      <ErrorLine error={error} />
      <div className="aicloud-metrics-head">
        {names.length > 1 ? (
          <select aria-label="Metric to chart" value={name} onChange={e => setMetric(e.target.value)}>
            {names.map(n => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        ) : (
          <strong>{name ?? 'progress'}</strong>
        )}
        {last && (
          <span className="aicloud-muted">
            {' '}
            {name} {Number(last.y.toPrecision(4))} at step {last.x}
          </span>
        )}
        {progress && (
          <span className="aicloud-muted">
            {' '}
            · step {progress.step ?? '?'} / {progress.total}
          </span>
        )}
      </div>
      {series.length > 0 && (
        <svg
          className="aicloud-chart"
          viewBox={`-4 -4 ${WIDTH + 8} ${HEIGHT + 8}`}
          role="img"
          aria-label={`${name}: ${series.length} points, from ${Number(y0.toPrecision(4))} to ${Number(y1.toPrecision(4))}`}
        >
          <polyline points={path} fill="none" className="aicloud-chart-line" />
        </svg>
      )}
    </section>
  );
}
