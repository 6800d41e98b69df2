/**
 * The machine live and each user's GPU use: CPU, memory and GPU utilisation charted from
 * `GET /resources/usage` while the tab is open, each visible user's GPUs in use against the
 * quota of the profile they run, and the backends.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { bytes, quotaLine } from '../format';
import { ChartView } from '../jobpage/ChartView';
import { addSample, cpuMemoryColumns, gpuColumns, quotaText } from '../resources/history';
import { IMachineUsage, IResources, IServiceStatus } from '../tokens';
import { ErrorLine, usePoll } from './hooks';

const POLL_MS = 2000;
const CHART_PX = 170;

/** The samples of the machine since the tab opened, and the backends (polled less often). */
function useMachine(api: AICloudAPI): {
  samples: IMachineUsage[];
  resources: IResources | null;
  error: string | null;
} {
  const [samples, setSamples] = React.useState<IMachineUsage[]>([]);
  const usage = usePoll(() => api.resourcesUsage(), POLL_MS, []);
  const resources = usePoll(() => api.resources(), 15000, []);
  React.useEffect(() => {
    if (usage.data) {
      setSamples(old => addSample(old, usage.data!));
    }
  }, [usage.data]);
  return { samples, resources: resources.data, error: usage.error ?? resources.error };
}

function UsersTable(props: { now: IMachineUsage; admin: boolean }): JSX.Element {
  const users = props.now.users;
  if (users.length === 0) {
    return <p className="aicloud-muted">No one runs a job.</p>;
  }
  return (
    <table className="aicloud-table aicloud-users" aria-label="GPU use by user">
      <thead>
        <tr>
          <th scope="col">User</th>
          <th scope="col">GPUs in use</th>
          <th scope="col">Running jobs</th>
        </tr>
      </thead>
      <tbody>
        {users.map(u => (
          <tr
            key={u.user}
            data-user={u.user}
            data-gpus-in-use={u.gpus_in_use}
            data-gpu-quota={u.gpu_quota ?? ''}
            className={u.gpu_quota !== null && u.gpus_in_use >= u.gpu_quota ? 'aicloud-at-quota' : ''}
          >
            <th scope="row">{u.user}</th>
            <td>{quotaText(u.gpus_in_use, u.gpu_quota)}</td>
            <td>{u.jobs_running}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function ResourcesPanel(props: { api: AICloudAPI; status: IServiceStatus | null }): JSX.Element {
  const { samples, resources, error } = useMachine(props.api);
  const now = samples.length ? samples[samples.length - 1] : null;
  const columns = React.useMemo(() => cpuMemoryColumns(samples), [samples]);
  const gpus = React.useMemo(() => gpuColumns(samples), [samples]);
  return (
    <section className="aicloud-resources" aria-label="Resources">
      <ErrorLine error={error} />
      {props.status && (
        <p className="aicloud-muted aicloud-service">
          aicloud {props.status.version} · {props.status.mode} · {props.status.user}
        </p>
      )}
      {now && (
        <>
          <h4>Machine</h4>
          <p className="aicloud-machine-now" data-cores={now.cores}>
            CPU: {(now.cpu_percent / 100).toFixed(1)} of {now.cores} cores busy · memory:{' '}
            {bytes(now.memory_used_bytes)} of {bytes(now.memory_total_bytes)} used
          </p>
          <ChartView
            name="machine cpu"
            columns={columns.cpu}
            options={{ title: 'CPU', xLabel: 'time', yLabel: 'cores', xTime: true, height: CHART_PX }}
          />
          <ChartView
            name="machine memory"
            columns={columns.memory}
            options={{ title: 'Memory', xLabel: 'time', yLabel: 'GiB', xTime: true, height: CHART_PX }}
          />
          <h4>GPUs</h4>
          {now.gpus.length === 0 ? (
            <p className="aicloud-muted aicloud-no-gpu">No GPU on this machine.</p>
          ) : (
            <>
              <ul className="aicloud-list aicloud-gpus">
                {now.gpus.map(g => (
                  <li key={g.index} data-gpu={g.index}>
                    GPU {g.index}: {g.model} ·{' '}
                    {g.utilization_percent === null ? 'utilisation unknown' : `${Math.round(g.utilization_percent)}% busy`}{' '}
                    · {bytes(g.memory_used_bytes)} of {bytes(g.memory_total_bytes)}
                  </li>
                ))}
              </ul>
              <ChartView
                name="machine gpus"
                columns={gpus}
                options={{ title: 'GPUs', xLabel: 'time', yLabel: '% busy', xTime: true, height: CHART_PX }}
              />
            </>
          )}
          <h4>{props.status?.admin ? 'GPU use by user' : 'Your GPU use'}</h4>
          <UsersTable now={now} admin={props.status?.admin ?? false} />
        </>
      )}
      {resources && (
        <>
          <h4>Quota</h4>
          {resources.quota ? (
            <p
              className="aicloud-gpu-quota"
              data-used={resources.quota.used}
              data-limit={resources.quota.limit ?? ''}
            >
              {quotaLine(resources.quota)}
            </p>
          ) : (
            <p className="aicloud-muted">
              {props.status?.mode === 'hub'
                ? 'No GPU quota is configured on this hub.'
                : 'No quota applies to a standalone server.'}
            </p>
          )}
          <h4>Backends</h4>
          <ul className="aicloud-list aicloud-backends">
            {resources.backends.map(backend => (
              <li key={backend.name} data-backend={backend.name}>
                {backend.name}:{' '}
                <span className={backend.available ? 'aicloud-ok' : 'aicloud-error'}>
                  {backend.available ? 'available' : 'unavailable'}
                </span>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
