/**
 * Runs side by side: pick runs (by tag, a schedule or ids), see their parameters (the ones
 * that differ highlighted), durations and final metrics in a table, and one metric's curves
 * of every run overlaid.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { ErrorLine, messageOf, usePoll } from '../components/hooks';
import { StatusBadge } from '../components/JobsList';
import { ChartView } from '../jobpage/ChartView';
import { duration } from '../jobpage/timeline';
import { IComparison, IMetricPoint, RunSelection, TERMINAL_STATUSES } from '../tokens';
import { IRunPoints, overlay } from './curves';
import {
  parseSelection,
  SELECTION_KINDS,
  SelectionKind,
  selectionFields
} from './selection';
import { legendLabels, metricText, parameterColumns, parameterText, runLabel } from './table';

const POLL_MS = 3000;
/** Points fetched per request, and at most per run. */
const PAGE = 10_000;
const MOST_POINTS = 100_000;

export interface ICompareViewProps {
  api: AICloudAPI;
  selection: RunSelection | null;
  onSelect: (selection: RunSelection) => void;
  onOpenJob: (id: string) => void;
}

function SelectionBar(props: {
  selection: RunSelection | null;
  onSelect: (selection: RunSelection) => void;
}): JSX.Element {
  const initial = props.selection ? selectionFields(props.selection) : { kind: 'tag', text: '' };
  const [kind, setKind] = React.useState<SelectionKind>(initial.kind as SelectionKind);
  const [text, setText] = React.useState(initial.text);
  const [error, setError] = React.useState<string | null>(null);
  const hint = SELECTION_KINDS.find(k => k.kind === kind)!;
  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    const parsed = parseSelection(kind, text);
    setError(parsed.ok ? null : parsed.error);
    if (parsed.ok) {
      props.onSelect(parsed.selection);
    }
  };
  return (
    <form className="aicloud-compare-select" aria-label="Select runs" onSubmit={submit}>
      <label>
        Runs by{' '}
        <select
          aria-label="Select runs by"
          value={kind}
          onChange={e => setKind(e.target.value as SelectionKind)}
        >
          {SELECTION_KINDS.map(k => (
            <option key={k.kind} value={k.kind}>
              {k.label}
            </option>
          ))}
        </select>
      </label>
      <input
        aria-label={hint.label}
        placeholder={hint.placeholder}
        value={text}
        spellCheck={false}
        onChange={e => setText(e.target.value)}
      />
      <button type="submit" className="aicloud-button aicloud-primary">
        Compare
      </button>
      <ErrorLine error={error} />
    </form>
  );
}

function CompareTable(props: {
  comparison: IComparison;
  onOpenJob: (id: string) => void;
}): JSX.Element {
  const { comparison } = props;
  const params = parameterColumns(comparison);
  return (
    <div className="aicloud-compare-scroll">
      <table className="aicloud-table aicloud-compare-table" aria-label="Runs side by side">
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Status</th>
            <th scope="col">Duration</th>
            {params.map(p => (
              <th
                scope="col"
                key={`p:${p.name}`}
                data-param={p.name}
                className={p.differs ? 'aicloud-compare-differs' : 'aicloud-muted'}
                title={p.differs ? 'differs between the runs' : 'the same in every run'}
              >
                {p.name}
              </th>
            ))}
            {comparison.metrics.map(name => (
              <th scope="col" key={`m:${name}`} data-metric={name} className="aicloud-compare-metric">
                {name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {comparison.runs.map(run => (
            <tr key={run.id} data-job-id={run.id}>
              <th scope="row">
                <button
                  className="aicloud-link"
                  onClick={() => props.onOpenJob(run.id)}
                  title={`Open the page of job ${run.id}`}
                >
                  {runLabel(run)}
                </button>
              </th>
              <td>
                <StatusBadge status={run.status} />
              </td>
              <td data-duration={run.duration_seconds ?? ''}>{duration(run.duration_seconds)}</td>
              {params.map(p => (
                <td
                  key={`p:${p.name}`}
                  data-param={p.name}
                  className={p.differs ? 'aicloud-compare-differs' : undefined}
                >
                  {parameterText(run.parameters[p.name])}
                </td>
              ))}
              {comparison.metrics.map(name => (
                <td key={`m:${name}`} data-metric={name} className="aicloud-compare-metric">
                  {metricText(run.final_metrics[name])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * Every point each run reported; while some run is still going, the new points are fetched
 * every few seconds (from where each run's points end).
 */
function useRunPoints(
  api: AICloudAPI,
  comparison: IComparison | null
): { points: Map<string, IMetricPoint[]>; error: string | null } {
  const [state, setState] = React.useState<{
    points: Map<string, IMetricPoint[]>;
    error: string | null;
  }>({ points: new Map(), error: null });
  const kept = React.useRef(new Map<string, IMetricPoint[]>());
  const ids = comparison ? comparison.runs.map(r => r.id) : [];
  const live = comparison ? comparison.runs.some(r => !TERMINAL_STATUSES.has(r.status)) : false;
  React.useEffect(() => {
    if (!comparison) {
      return;
    }
    let alive = true;
    let timer: number | undefined;
    const more = async (id: string) => {
      const points = [...(kept.current.get(id) ?? [])];
      while (points.length < MOST_POINTS) {
        const page = await api.metrics(id, points.length, PAGE);
        points.push(...page.points);
        if (page.points.length < PAGE) {
          break;
        }
      }
      return [id, points] as const;
    };
    const load = async () => {
      try {
        const entries = await Promise.all(ids.map(more));
        if (alive) {
          kept.current = new Map(entries);
          setState({ points: kept.current, error: null });
        }
      } catch (error) {
        if (alive) {
          setState(old => ({ ...old, error: messageOf(error) }));
        }
      }
      if (alive && live) {
        timer = window.setTimeout(load, POLL_MS);
      }
    };
    void load();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [ids.join(','), live]);
  return state;
}

function CompareCurves(props: { api: AICloudAPI; comparison: IComparison }): JSX.Element | null {
  const { comparison } = props;
  const [metric, setMetric] = React.useState(comparison.metrics[0] ?? '');
  const [log, setLog] = React.useState(false);
  const { points, error } = useRunPoints(props.api, comparison);
  const shown = comparison.metrics.includes(metric) ? metric : (comparison.metrics[0] ?? '');
  const columns = React.useMemo(() => {
    const labels = legendLabels(comparison);
    const runs: IRunPoints[] = comparison.runs.map((run, i) => ({
      label: labels[i],
      points: points.get(run.id) ?? []
    }));
    return overlay(runs, shown);
  }, [comparison, points, shown]);
  if (!shown) {
    return <p className="aicloud-muted">These runs reported no metrics.</p>;
  }
  return (
    <section className="aicloud-page-section aicloud-compare-curves" aria-label="Curves">
      <div className="aicloud-section-head">
        <h3>Curves</h3>
        <label className="aicloud-inline-label">
          Metric{' '}
          <select aria-label="Metric to overlay" value={shown} onChange={e => setMetric(e.target.value)}>
            {comparison.metrics.map(name => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label className="aicloud-inline-label">
          <input type="checkbox" checked={log} onChange={e => setLog(e.target.checked)} /> Log scale
        </label>
      </div>
      <ErrorLine error={error} />
      <ChartView
        key={`${shown}:${columns.xLabel}`}
        name={`overlay ${shown}`}
        columns={columns}
        logScale={log}
        options={{ title: shown, xLabel: columns.xLabel, yLabel: shown, height: 300 }}
      />
    </section>
  );
}

export function CompareView(props: ICompareViewProps): JSX.Element {
  const { api, selection } = props;
  const key = JSON.stringify(selection);
  const polled = usePoll<IComparison | null>(
    () => (selection ? api.compare(selection) : Promise.resolve(null)),
    selection ? POLL_MS : 0,
    [key]
  );
  const comparison = polled.data;
  return (
    <div className="aicloud-compare" data-selection={key}>
      <SelectionBar key={key} selection={selection} onSelect={props.onSelect} />
      <ErrorLine error={polled.error} />
      {!selection && (
        <p className="aicloud-muted">
          Pick the runs to compare: the runs tagged with a tag, the runs of a schedule, or some
          job ids.
        </p>
      )}
      {comparison && comparison.runs.length === 0 && (
        <p className="aicloud-muted">No runs match this selection yet.</p>
      )}
      {comparison && comparison.runs.length > 0 && (
        <>
          <p className="aicloud-compare-summary">
            {comparison.runs.length} run{comparison.runs.length === 1 ? '' : 's'}
            {comparison.parameters.length
              ? ` · parameters that differ: ${comparison.parameters.join(', ')}`
              : ' · the same parameters'}
          </p>
          <CompareTable comparison={comparison} onOpenJob={props.onOpenJob} />
          <CompareCurves api={api} comparison={comparison} />
        </>
      )}
    </div>
  );
}
