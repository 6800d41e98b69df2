/**
 * Hardware and quota at a glance: accelerators by type (total, in use by active jobs),
 * backends, the GPU quota and use (hub), CPU and memory.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { bytes, quotaLine } from '../format';
import { IJob, IResources, IServiceStatus } from '../tokens';
import { ErrorLine, usePoll } from './hooks';

interface IAcceleratorRow {
  type: string;
  model: string;
  total: number;
  inUse: number;
}

/** Accelerators grouped by resource type and model, with those requested by active jobs. */
export function acceleratorRows(resources: IResources, active: IJob[]): IAcceleratorRow[] {
  const rows = new Map<string, IAcceleratorRow>();
  const add = (type: string, model: string, count: number) => {
    const key = `${type}\u0000${model}`;
    const row = rows.get(key) ?? { type, model, total: 0, inUse: 0 };
    row.total += count;
    rows.set(key, row);
  };
  for (const gpu of resources.gpus) {
    add(gpu.type, gpu.model, 1);
  }
  if (resources.tpu) {
    add(resources.tpu.type ?? 'google.com/tpu', 'TPU', resources.tpu.devices?.length ?? 0);
  }
  for (const job of active) {
    const request = job.spec.resources;
    if (!request?.accelerator || !request.accelerator_count) {
      continue;
    }
    const count = request.accelerator_count * (request.nodes ?? 1);
    const row = [...rows.values()].find(r => r.type === request.accelerator);
    if (row) {
      row.inUse += count;
    } else {
      rows.set(request.accelerator, {
        type: request.accelerator,
        model: '(not on this machine)',
        total: 0,
        inUse: count
      });
    }
  }
  return [...rows.values()];
}

export function ResourcesPanel(props: {
  api: AICloudAPI;
  status: IServiceStatus | null;
}): JSX.Element {
  const polled = usePoll(
    async () => {
      const [resources, page] = await Promise.all([
        props.api.resources(),
        props.api.listJobs({ status: ['starting', 'running'], limit: 500 })
      ]);
      return { resources, active: page.jobs };
    },
    5000,
    []
  );
  const data = polled.data;
  const rows = data ? acceleratorRows(data.resources, data.active) : [];
  const mine = data
    ? acceleratorRows({ ...data.resources, gpus: [], tpu: null }, data.active.filter(j => j.owner === props.status?.user))
    : [];
  return (
    <section className="aicloud-resources" aria-label="Resources">
      <ErrorLine error={polled.error} />
      {props.status && (
        <p className="aicloud-muted aicloud-service">
          aicloud {props.status.version} · {props.status.mode} · {props.status.user}
        </p>
      )}
      {data && (
        <>
          <h4>Accelerators</h4>
          {rows.length === 0 ? (
            <p className="aicloud-muted">No GPU or TPU on this machine.</p>
          ) : (
            <table className="aicloud-table">
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">Model</th>
                  <th scope="col">Total</th>
                  <th scope="col">In use</th>
                </tr>
              </thead>
              <tbody>
                {rows.map(row => (
                  <tr key={`${row.type}/${row.model}`}>
                    <td>{row.type}</td>
                    <td>{row.model}</td>
                    <td>{row.total}</td>
                    <td>{row.inUse}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h4>Backends</h4>
          <ul className="aicloud-list aicloud-backends">
            {data.resources.backends.map(backend => (
              <li key={backend.name} data-backend={backend.name}>
                {backend.name}:{' '}
                <span className={backend.available ? 'aicloud-ok' : 'aicloud-error'}>
                  {backend.available ? 'available' : 'unavailable'}
                </span>
              </li>
            ))}
          </ul>
          <h4>Quota</h4>
          <p className="aicloud-quota">
            Running jobs: {data.active.length}
            {mine.length > 0 &&
              ` · accelerators you use: ${mine.map(r => `${r.inUse} ${r.type}`).join(', ')}`}
          </p>
          {data.resources.quota ? (
            <p
              className="aicloud-gpu-quota"
              data-used={data.resources.quota.used}
              data-limit={data.resources.quota.limit ?? ''}
            >
              {quotaLine(data.resources.quota)}
            </p>
          ) : (
            <p className="aicloud-muted">
              {props.status?.mode === 'hub'
                ? 'No GPU quota is configured on this hub.'
                : 'No quota applies to a standalone server.'}
            </p>
          )}
          <h4>Machine</h4>
          <p>
            {data.resources.cpu.usable} of {data.resources.cpu.cores} CPU cores ·{' '}
            {bytes(data.resources.memory.available_bytes)} of{' '}
            {bytes(data.resources.memory.total_bytes)} memory free
          </p>
        </>
      )}
    </section>
  );
}
