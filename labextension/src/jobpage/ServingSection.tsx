/**
 * A serve job's endpoint and request statistics (`GET /jobs/{id}/serving`, read by the service
 * from the model server's Prometheus `/metrics`): requests, errors, p50/p99 latency, queue
 * depth and the batch-size histogram.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { ErrorLine, usePoll } from '../components/hooks';
import { IEndpoint, IServing } from '../tokens';

const POLL_MS = 2000;

function ms(value: number | null): string {
  return value === null ? '–' : `${value.toFixed(value < 10 ? 2 : 0)} ms`;
}

/** Bars per bucket: each bucket's own count (Prometheus buckets are cumulative). */
export function bucketCounts(buckets: IServing['batch_sizes']): { le: string; count: number }[] {
  let below = 0;
  return buckets.map(b => {
    const own = Math.max(0, b.count - below);
    below = b.count;
    return { le: String(b.le), count: own };
  });
}

function BatchHistogram(props: { buckets: IServing['batch_sizes'] }): JSX.Element | null {
  const bars = bucketCounts(props.buckets);
  const most = Math.max(1, ...bars.map(b => b.count));
  if (!bars.length) {
    return null;
  }
  return (
    <figure className="aicloud-histogram" aria-label="Batch sizes">
      <figcaption>Batch sizes (requests per batch)</figcaption>
      {bars.map(b => (
        <div key={b.le} className="aicloud-histogram-row">
          <span className="aicloud-histogram-label">≤ {b.le}</span>
          <span className="aicloud-histogram-bar" style={{ width: `${(b.count / most) * 100}%` }} />
          <span className="aicloud-histogram-count">{b.count}</span>
        </div>
      ))}
    </figure>
  );
}

export function ServingSection(props: {
  api: AICloudAPI;
  jobId: string;
  endpoint: IEndpoint | null | undefined;
  running: boolean;
}): JSX.Element {
  const stats = usePoll(() => props.api.serving(props.jobId), props.running ? POLL_MS : 0, [
    props.jobId,
    props.running
  ]);
  const endpoint = stats.data?.endpoint ?? props.endpoint ?? null;
  const s = stats.data;
  return (
    <section className="aicloud-page-section aicloud-page-serving" aria-label="Serving">
      <h3>Serving</h3>
      {endpoint ? (
        <dl className="aicloud-page-facts">
          <dt>Endpoint</dt>
          <dd>
            <a href={endpoint.url} target="_blank" rel="noreferrer" className="aicloud-endpoint">
              {endpoint.url}
            </a>
          </dd>
          <dt>Inference</dt>
          <dd>
            <code>{endpoint.infer_url}</code>
          </dd>
          <dt>Model</dt>
          <dd>{endpoint.model}</dd>
        </dl>
      ) : (
        <p className="aicloud-muted">Not serving yet.</p>
      )}
      {props.running && <ErrorLine error={stats.error} />}
      {s && (
        <>
          <dl className="aicloud-serving-numbers">
            <dt>Requests</dt>
            <dd data-stat="requests">{s.requests}</dd>
            <dt>Errors</dt>
            <dd data-stat="errors">{s.errors}</dd>
            <dt>p50</dt>
            <dd data-stat="p50">{ms(s.latency_ms.p50)}</dd>
            <dt>p99</dt>
            <dd data-stat="p99">{ms(s.latency_ms.p99)}</dd>
            <dt>Queue</dt>
            <dd data-stat="queue">{s.queue_depth ?? '–'}</dd>
          </dl>
          <BatchHistogram buckets={s.batch_sizes} />
        </>
      )}
    </section>
  );
}
