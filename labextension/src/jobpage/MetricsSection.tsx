/**
 * A job's reported metrics as charts, one per metric with a line per rank, growing live
 * while the job runs.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { ErrorLine, messageOf } from '../components/hooks';
import { IMetricPoint, TERMINAL_STATUSES } from '../tokens';
import { ChartView } from './ChartView';
import { hasSteps, metricColumns, metricNames } from './series';

const POLL_MS = 1000;
/** The server's most points per answer, and the most this page keeps. */
const PAGE = 10_000;
const KEEP = 50_000;

/** Poll `/metrics` from where the last answer ended; all points so far. */
function useMetricPoints(api: AICloudAPI, jobId: string, ended: boolean) {
  const [points, setPoints] = React.useState<IMetricPoint[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const next = React.useRef(0);
  React.useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const load = async () => {
      try {
        const answer = await api.metrics(jobId, next.current, PAGE);
        if (!alive) {
          return;
        }
        next.current = answer.next;
        if (answer.points.length) {
          setPoints(old => old.concat(answer.points).slice(-KEEP));
        }
        setError(null);
      } catch (e) {
        if (alive) {
          setError(messageOf(e));
        }
      }
      if (alive && !ended) {
        timer = window.setTimeout(load, POLL_MS);
      }
    };
    void load();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [jobId, ended]);
  return { points, error };
}

export function MetricsSection(props: { api: AICloudAPI; jobId: string; status: string }): JSX.Element | null {
  const ended = TERMINAL_STATUSES.has(props.status);
  const { points, error } = useMetricPoints(props.api, props.jobId, ended);
  const [log, setLog] = React.useState(false);
  const names = React.useMemo(() => metricNames(points), [points]);
  const columns = React.useMemo(() => names.map(n => metricColumns(points, n)), [points, names]);
  if (!names.length && !error) {
    return null;
  }
  const xLabel = hasSteps(points) ? 'step' : 'time';
  return (
    <section className="aicloud-page-section aicloud-page-metrics" aria-label="Metrics">
      <div className="aicloud-section-head">
        <h3>Metrics</h3>
        <label className="aicloud-inline-label">
          <input type="checkbox" checked={log} onChange={e => setLog(e.target.checked)} /> Log scale
        </label>
      </div>
      <ErrorLine error={error} />
      <div className="aicloud-chart-grid">
        {names.map((name, i) => (
          <ChartView
            key={name}
            name={`metric ${name}`}
            columns={columns[i]}
            logScale={log}
            options={{ title: name, xLabel, yLabel: name, xTime: xLabel === 'time' }}
          />
        ))}
      </div>
    </section>
  );
}
