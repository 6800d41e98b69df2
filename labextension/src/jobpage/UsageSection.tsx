/**
 * A job's resource use (CPU %, RSS, GPU utilisation and memory) as the supervisor samples
 * it, from `GET /jobs/{id}/usage`, growing live while the job runs.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { ErrorLine, messageOf } from '../components/hooks';
import { IUsagePoint, TERMINAL_STATUSES } from '../tokens';
import { ChartView } from './ChartView';
import { usageColumns } from './series';

const POLL_MS = 2000;
const KEEP = 20_000;

export function UsageSection(props: { api: AICloudAPI; jobId: string; status: string }): JSX.Element {
  const ended = TERMINAL_STATUSES.has(props.status);
  const [points, setPoints] = React.useState<IUsagePoint[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const next = React.useRef(0);
  React.useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const load = async () => {
      try {
        const answer = await props.api.usage(props.jobId, next.current, 1000);
        if (!alive) {
          return;
        }
        next.current = answer.next;
        if (answer.points.length) {
          setPoints(old => old.concat(answer.points).slice(-KEEP));
        }
        setError(null);
        if (answer.points.length >= 1000) {
          timer = window.setTimeout(load, 0); // more to read
          return;
        }
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
  }, [props.jobId, ended]);
  const columns = React.useMemo(() => usageColumns(points), [points]);
  const time = { xLabel: 'time', xTime: true };
  return (
    <section className="aicloud-page-section aicloud-page-usage" aria-label="Resource use">
      <h3>Resource use</h3>
      <ErrorLine error={error} />
      {!points.length && !error && <p className="aicloud-muted">No samples yet.</p>}
      <div className="aicloud-chart-grid">
        <ChartView name="usage cpu" columns={columns.cpu} options={{ ...time, title: 'CPU', yLabel: '% of one core' }} />
        <ChartView name="usage memory" columns={columns.memory} options={{ ...time, title: 'Memory (RSS)', yLabel: 'MiB' }} />
        {columns.gpu && (
          <ChartView name="usage gpu" columns={columns.gpu} options={{ ...time, title: 'GPU utilisation', yLabel: '%' }} />
        )}
        {columns.gpuMemory && (
          <ChartView name="usage gpu memory" columns={columns.gpuMemory} options={{ ...time, title: 'GPU memory', yLabel: 'MiB' }} />
        )}
      </div>
    </section>
  );
}
