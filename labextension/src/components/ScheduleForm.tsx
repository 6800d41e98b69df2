/**
 * Create a schedule from a notebook: the form is built from the notebook's typed parameters,
 * and the cron field previews itself in plain words with its next three fire times.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { formatInZone, localTimeZone, previewCron } from '../cron';
import { basename } from '../format';
import { collectParameters, initialTexts } from '../paramform';
import { ISchedule, IScheduleSpec } from '../tokens';
import { ErrorLine, useAction, usePoll } from './hooks';
import { ParamForm } from './ParamForm';

function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  try {
    return intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  } catch {
    return [];
  }
}

export function CronPreview(props: { cron: string; timezone: string }): JSX.Element {
  const preview = previewCron(props.cron, props.timezone);
  if (preview.error) {
    return (
      <p className="aicloud-error aicloud-cron-error" id="aicloud-cron-preview" role="alert">
        {preview.error}
      </p>
    );
  }
  return (
    <div className="aicloud-cron-preview" id="aicloud-cron-preview" aria-live="polite">
      <p className="aicloud-cron-description">{preview.description}</p>
      <ol className="aicloud-cron-next" aria-label="Next fire times">
        {preview.next.map(date => (
          <li key={date.toISOString()}>{formatInZone(date, props.timezone)}</li>
        ))}
      </ol>
    </div>
  );
}

export function ScheduleForm(props: {
  api: AICloudAPI;
  path: string;
  onDone: (schedule: ISchedule | null) => void;
}): JSX.Element {
  const [path, setPath] = React.useState(props.path);
  const [name, setName] = React.useState(basename(props.path).replace(/\.ipynb$/, ''));
  const [cron, setCron] = React.useState('0 6 * * 1-5');
  const [timezone, setTimezone] = React.useState(localTimeZone());
  const [keepLast, setKeepLast] = React.useState('');
  const [texts, setTexts] = React.useState<Record<string, string>>({});
  const [fieldErrors, setFieldErrors] = React.useState<Record<string, string>>({});
  const parameters = usePoll(
    async () => {
      const answer = await props.api.notebookParameters(path);
      setTexts(initialTexts(answer.parameters));
      setFieldErrors({});
      return answer;
    },
    0,
    [path]
  );
  const action = useAction();
  const zones = React.useMemo(timeZones, []);

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    const params = parameters.data?.parameters ?? [];
    const { values, errors } = collectParameters(params, texts);
    setFieldErrors(errors);
    if (Object.keys(errors).length) {
      return;
    }
    const spec: IScheduleSpec = {
      name: name.trim() || null,
      cron: cron.trim(),
      timezone: timezone.trim(),
      job: { kind: 'notebook', notebook: path, name: name.trim() || null, origin: { notebook: path } }
    };
    if (Object.keys(values).length) {
      spec.job.parameters = values;
    }
    if (keepLast.trim()) {
      spec.keep_last = Number(keepLast);
    }
    void action.run(async () => props.onDone(await props.api.createSchedule(spec)));
  };

  return (
    <form className="aicloud-schedule-form" onSubmit={submit} aria-label="New schedule">
      <h3>Schedule a notebook</h3>
      <div className="aicloud-field">
        <label htmlFor="aicloud-schedule-notebook">Notebook</label>
        <input
          id="aicloud-schedule-notebook"
          value={path}
          onChange={e => setPath(e.target.value)}
          required
        />
      </div>
      <div className="aicloud-field">
        <label htmlFor="aicloud-schedule-name">Name</label>
        <input id="aicloud-schedule-name" value={name} onChange={e => setName(e.target.value)} />
      </div>
      <div className="aicloud-field">
        <label htmlFor="aicloud-schedule-cron">Cron (minute hour day month weekday)</label>
        <input
          id="aicloud-schedule-cron"
          value={cron}
          spellCheck={false}
          aria-describedby="aicloud-cron-preview"
          onChange={e => setCron(e.target.value)}
          required
        />
      </div>
      <div className="aicloud-field">
        <label htmlFor="aicloud-schedule-timezone">Time zone</label>
        <input
          id="aicloud-schedule-timezone"
          list="aicloud-timezones"
          value={timezone}
          onChange={e => setTimezone(e.target.value)}
          required
        />
        <datalist id="aicloud-timezones">
          {zones.map(zone => (
            <option key={zone} value={zone} />
          ))}
        </datalist>
      </div>
      <CronPreview cron={cron} timezone={timezone} />
      <div className="aicloud-field">
        <label htmlFor="aicloud-schedule-keep">Keep the outputs of the last N runs</label>
        <input
          id="aicloud-schedule-keep"
          inputMode="numeric"
          placeholder="all"
          value={keepLast}
          onChange={e => setKeepLast(e.target.value)}
        />
      </div>
      <ErrorLine error={parameters.error} />
      {parameters.data && (
        <ParamForm
          parameters={parameters.data.parameters}
          texts={texts}
          errors={fieldErrors}
          onChange={(param, text) => setTexts(old => ({ ...old, [param]: text }))}
        />
      )}
      <ErrorLine error={action.error} />
      <div className="aicloud-actions">
        <button type="submit" className="aicloud-button aicloud-primary" disabled={action.busy}>
          Create schedule
        </button>
        <button type="button" className="aicloud-button" onClick={() => props.onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
