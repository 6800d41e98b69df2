/**
 * The comparison table's cells: parameter values and final metrics as text (pure functions).
 */

import { ICompareRun, IComparison } from '../tokens';

/** A parameter value as a user would type it: strings bare, the rest as JSON. */
export function parameterText(value: unknown): string {
  if (value === undefined) {
    return '–';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * A final metric to 4 significant digits (no k/M suffixes: the table is read closely), or a
 * dash when the run did not report it.
 */
export function metricText(value: number | null | undefined): string {
  return typeof value === 'number' ? String(+value.toPrecision(4)) : '–';
}

/** Every parameter name of the runs: the differing ones first, then the rest, each sorted. */
export function parameterColumns(comparison: IComparison): { name: string; differs: boolean }[] {
  const differing = new Set(comparison.parameters);
  const all = new Set<string>();
  comparison.runs.forEach(run => Object.keys(run.parameters).forEach(name => all.add(name)));
  const same = [...all].filter(name => !differing.has(name)).sort();
  return [
    ...[...differing].sort().map(name => ({ name, differs: true })),
    ...same.map(name => ({ name, differs: false }))
  ];
}

/** The run's label in the table, the legend and the tab: its name, else its id. */
export function runLabel(run: Pick<ICompareRun, 'id' | 'name'>): string {
  return run.name ?? run.id;
}

/**
 * Labels that tell runs apart in a legend: a name shared by several runs gets the run's
 * differing parameter values (`report (lr=0.1)`), else its short id.
 */
export function legendLabels(comparison: IComparison): string[] {
  const counts = new Map<string, number>();
  comparison.runs.forEach(run => counts.set(runLabel(run), (counts.get(runLabel(run)) ?? 0) + 1));
  return comparison.runs.map(run => {
    const label = runLabel(run);
    if ((counts.get(label) ?? 0) < 2) {
      return label;
    }
    const values = comparison.parameters
      .filter(name => name in run.parameters)
      .map(name => `${name}=${parameterText(run.parameters[name])}`);
    return `${label} (${values.length ? values.join(', ') : run.id.slice(0, 8)})`;
  });
}
