/**
 * Which runs a comparison shows, as a user types it and as the URL and commands carry it
 * (pure functions: no JupyterLab imports). A sweep (issue 19) becomes one more kind here.
 */

import { RunSelection } from '../tokens';

/** How runs are picked: by a tag, a schedule's runs, or a list of job ids. */
export type SelectionKind = 'tag' | 'schedule_id' | 'ids';

export const SELECTION_KINDS: { kind: SelectionKind; label: string; placeholder: string }[] = [
  { kind: 'tag', label: 'Tag', placeholder: 'a tag the runs carry, e.g. lr-sweep' },
  { kind: 'schedule_id', label: 'Schedule', placeholder: 'a schedule id' },
  { kind: 'ids', label: 'Job ids', placeholder: 'job ids, separated by commas or spaces' }
];

/** The most runs one comparison holds (the service's limit). */
export const MAX_RUNS = 50;

export type SelectionResult = { ok: true; selection: RunSelection } | { ok: false; error: string };

/** A selection from the kind and the text of the selection bar, or an error naming the field. */
export function parseSelection(kind: SelectionKind, text: string): SelectionResult {
  const value = text.trim();
  if (kind === 'ids') {
    const ids = value.split(/[\s,]+/).filter(Boolean);
    if (ids.length === 0) {
      return { ok: false, error: 'ids: give at least one job id' };
    }
    if (ids.length > MAX_RUNS) {
      return { ok: false, error: `ids: at most ${MAX_RUNS} runs, got ${ids.length}` };
    }
    return { ok: true, selection: { ids: [...new Set(ids)] } };
  }
  if (!value) {
    return { ok: false, error: `${kind}: give a ${kind === 'tag' ? 'tag' : 'schedule id'}` };
  }
  return { ok: true, selection: kind === 'tag' ? { tag: value } : { schedule_id: value } };
}

/** The kind and the text that show `selection` in the selection bar. */
export function selectionFields(selection: RunSelection): { kind: SelectionKind; text: string } {
  if ('ids' in selection) {
    return { kind: 'ids', text: selection.ids.join(', ') };
  }
  if ('schedule_id' in selection) {
    return { kind: 'schedule_id', text: selection.schedule_id };
  }
  return { kind: 'tag', text: selection.tag };
}

/** "tag lr-sweep", "schedule 3f2a…", "3 runs": a selection in a few words (tab titles). */
export function describeSelection(selection: RunSelection): string {
  if ('ids' in selection) {
    return `${selection.ids.length} run${selection.ids.length === 1 ? '' : 's'}`;
  }
  if ('schedule_id' in selection) {
    return `schedule ${selection.schedule_id.slice(0, 8)}`;
  }
  return `tag ${selection.tag}`;
}

/** A selection from command arguments (`{tag}`, `{schedule_id}` or `{ids}`), if any. */
export function selectionOfArgs(args: Record<string, unknown>): RunSelection | null {
  if (Array.isArray(args.ids) && args.ids.length) {
    return { ids: args.ids.map(String) };
  }
  if (typeof args.ids === 'string' && args.ids.trim()) {
    const parsed = parseSelection('ids', args.ids);
    return parsed.ok ? parsed.selection : null;
  }
  if (typeof args.schedule_id === 'string' && args.schedule_id) {
    return { schedule_id: args.schedule_id };
  }
  if (typeof args.tag === 'string' && args.tag) {
    return { tag: args.tag };
  }
  return null;
}
