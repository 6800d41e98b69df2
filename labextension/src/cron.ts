/**
 * The cron field's preview: a plain-language description and the next fire times.
 *
 * The service reads five fields (minute, hour, day of month, month, day of week) as wall-clock
 * times in the schedule's IANA time zone; so does this preview.
 */

import { CronExpressionParser } from 'cron-parser';
import cronstrue from 'cronstrue';

export interface ICronPreview {
  /** "At 06:00, Monday through Friday", or null when the expression is invalid. */
  description: string | null;
  /** The next fire times, as instants. */
  next: Date[];
  /** Why the expression or the time zone is refused, naming the field. */
  error: string | null;
}

/** Whether `name` is a time zone this browser knows (IANA names). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Describe `expression` and list its next `count` fire times after `from` in `timezone`. */
export function previewCron(
  expression: string,
  timezone: string,
  count = 3,
  from: Date = new Date()
): ICronPreview {
  const fields = expression.trim().split(/\s+/).filter(Boolean);
  if (fields.length !== 5) {
    return {
      description: null,
      next: [],
      error: `cron: expected five fields (minute hour day month weekday), got ${fields.length}`
    };
  }
  if (!isTimeZone(timezone)) {
    return {
      description: null,
      next: [],
      error: `timezone: unknown time zone '${timezone}' (use an IANA name like Europe/Berlin)`
    };
  }
  let description: string;
  try {
    description = cronstrue.toString(fields.join(' '), {
      throwExceptionOnParseError: true,
      use24HourTimeFormat: true,
      verbose: false
    });
  } catch (e) {
    return { description: null, next: [], error: `cron: ${String(e).replace(/^Error: /, '')}` };
  }
  try {
    const interval = CronExpressionParser.parse(fields.join(' '), {
      currentDate: from,
      tz: timezone
    });
    const next = interval.take(count).map(date => date.toDate());
    return { description, next, error: null };
  } catch (e) {
    return { description, next: [], error: `cron: ${(e as Error).message}` };
  }
}

/** "Mon 2 Jun 2025, 06:00 CEST": an instant as wall-clock time in `timezone`. */
export function formatInZone(date: Date, timezone: string): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: timezone,
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hour12: false,
    timeZoneName: 'short'
  }).format(date);
}

/** The browser's own time zone, or UTC. */
export function localTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
