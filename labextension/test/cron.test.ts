/**
 * The cron preview: plain words, the next fire times in the schedule's time zone, and errors
 * that name the field.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatInZone, previewCron } from '../src/cron';
import { age, lineRank } from '../src/format';

const FROM = new Date('2025-03-28T12:00:00Z'); // a Friday; Berlin moves to CEST on Sunday 30th

test('weekday mornings in Berlin: words and the next three ticks across the DST change', () => {
  const preview = previewCron('0 6 * * 1-5', 'Europe/Berlin', 3, FROM);
  assert.equal(preview.error, null);
  assert.equal(preview.description, 'At 06:00, Monday through Friday');
  assert.deepEqual(
    preview.next.map(d => d.toISOString()),
    ['2025-03-31T04:00:00.000Z', '2025-04-01T04:00:00.000Z', '2025-04-02T04:00:00.000Z']
  );
  assert.equal(formatInZone(preview.next[0], 'Europe/Berlin'), 'Mon, 31 Mar 2025, 06:00 CEST');
});

test('the same expression in UTC fires at 06:00 UTC', () => {
  const preview = previewCron('*/15 * * * *', 'UTC', 3, FROM);
  assert.equal(preview.description, 'Every 15 minutes');
  assert.deepEqual(
    preview.next.map(d => d.toISOString()),
    ['2025-03-28T12:15:00.000Z', '2025-03-28T12:30:00.000Z', '2025-03-28T12:45:00.000Z']
  );
});

test('bad expressions and time zones are refused, naming the field', () => {
  assert.equal(
    previewCron('0 6 * *', 'UTC').error,
    'cron: expected five fields (minute hour day month weekday), got 4'
  );
  assert.match(previewCron('0 25 * * *', 'UTC').error ?? '', /^cron: /);
  assert.equal(
    previewCron('0 6 * * *', 'Mars/Olympus').error,
    "timezone: unknown time zone 'Mars/Olympus' (use an IANA name like Europe/Berlin)"
  );
});

test('ages and rank prefixes', () => {
  const now = Date.parse('2025-01-01T00:10:00Z');
  assert.equal(age('2025-01-01T00:09:55Z', now), '5s');
  assert.equal(age('2025-01-01T00:00:00Z', now), '10m');
  assert.equal(age('2024-12-30T00:00:00Z', now), '2d');
  assert.equal(lineRank('[rank12]: loss 0.1'), 12);
  assert.equal(lineRank('plain line'), null);
});
