/**
 * A job's duration and its attempts as a timeline (pure functions: unit-tested in Node).
 */

import { IAttempt } from '../tokens';

/** Seconds from `startedAt` to `finishedAt`, or to `now` while unfinished; null before start. */
export function elapsedSeconds(
  startedAt: string | null,
  finishedAt: string | null,
  now: number = Date.now()
): number | null {
  if (!startedAt) {
    return null;
  }
  const end = finishedAt ? Date.parse(finishedAt) : now;
  return Math.max(0, (end - Date.parse(startedAt)) / 1000);
}

/** "42s", "3m 05s", "2h 01m", "3d 4h". */
export function duration(seconds: number | null): string {
  if (seconds === null) {
    return '–';
  }
  const s = Math.floor(seconds);
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${two(s % 60)}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h ${two(Math.floor((s % 3600) / 60))}m`;
  }
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** One attempt on the timeline, placed in percent of the whole span. */
export interface ISegmentPlace {
  number: number;
  status: string;
  restarts: number;
  leftPercent: number;
  widthPercent: number;
  label: string;
}

/**
 * The attempts that started, laid out from the first start to the last end (or `now`). A
 * very short attempt keeps a visible minimum width.
 */
export function timelineSegments(attempts: IAttempt[], now: number = Date.now()): ISegmentPlace[] {
  const started = attempts.filter(a => a.started_at);
  if (!started.length) {
    return [];
  }
  const start = (a: IAttempt) => Date.parse(a.started_at!);
  const end = (a: IAttempt) => (a.finished_at ? Date.parse(a.finished_at) : now);
  const t0 = Math.min(...started.map(start));
  const t1 = Math.max(...started.map(end), t0 + 1);
  const span = t1 - t0;
  return started.map(a => {
    const left = ((start(a) - t0) / span) * 100;
    const width = Math.max(1, ((end(a) - start(a)) / span) * 100);
    const restarts = a.restarts ? `, ${a.restarts} restart${a.restarts === 1 ? '' : 's'}` : '';
    const seconds = (end(a) - start(a)) / 1000;
    return {
      number: a.number,
      status: a.status,
      restarts: a.restarts,
      leftPercent: Math.min(left, 99),
      widthPercent: Math.min(width, 100 - Math.min(left, 99)),
      label: `attempt ${a.number}: ${a.status}, ${duration(seconds)}${restarts}${a.reason ? ` (${a.reason})` : ''}`
    };
  });
}
