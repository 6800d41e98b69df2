/**
 * A job's parameters and duration in one line, for the lists: `lr=0.1, epochs=3 · 2m 05s`.
 */

import * as React from 'react';

import { parameterText } from '../compare/table';
import { duration } from '../jobpage/timeline';
import { IJobDetails } from '../tokens';

/** At most this many parameters are written out; the rest are counted. */
const SHOWN = 4;

/** `lr=0.1, epochs=3, +2 more`, or '' when the job has no parameters. */
export function parametersLine(parameters: Record<string, unknown>): string {
  const entries = Object.entries(parameters);
  const shown = entries.slice(0, SHOWN).map(([k, v]) => `${k}=${parameterText(v)}`);
  if (entries.length > SHOWN) {
    shown.push(`+${entries.length - SHOWN} more`);
  }
  return shown.join(', ');
}

export function JobSummary(props: { job: IJobDetails }): JSX.Element | null {
  const parameters = props.job.parameters ?? props.job.spec.parameters ?? {};
  const line = parametersLine(parameters);
  const seconds = props.job.duration_seconds ?? null;
  if (!line && seconds === null) {
    return null;
  }
  return (
    <span className="aicloud-row-meta aicloud-job-summary">
      {line && (
        <span className="aicloud-job-parameters" title={JSON.stringify(parameters)}>
          {line}
        </span>
      )}
      {line && seconds !== null && ' · '}
      {seconds !== null && (
        <span className="aicloud-job-duration" data-seconds={seconds}>
          {duration(seconds)}
        </span>
      )}
    </span>
  );
}
