/**
 * ANSI-coloured log text as styled segments, parsed with anser (MIT). The segments carry
 * JupyterLab's own ANSI class names (`ansi-red-fg`, `ansi-bold`…), which its theme colours
 * inside `.jp-RenderedText pre`; nothing is ever set as HTML.
 */

import Anser from 'anser';

export interface ISegment {
  text: string;
  /** Space-separated class names; '' for plain text. */
  className: string;
  /** An inline colour for 24-bit ("truecolor") escapes. */
  color?: string;
  background?: string;
}

/** Whether a line has any escape sequence (most do not: skip the parser). */
const ESCAPE = /\u001b\[/;

/** The segments of one line of log text. */
export function ansiSegments(line: string): ISegment[] {
  if (!ESCAPE.test(line)) {
    return [{ text: line, className: '' }];
  }
  const segments: ISegment[] = [];
  for (const entry of Anser.ansiToJson(line, { use_classes: true, remove_empty: true })) {
    const classes: string[] = [];
    const segment: ISegment = { text: entry.content, className: '' };
    if (entry.fg === 'ansi-truecolor') {
      segment.color = `rgb(${entry.fg_truecolor})`;
    } else if (entry.fg) {
      classes.push(`${entry.fg}-fg`);
    }
    if (entry.bg === 'ansi-truecolor') {
      segment.background = `rgb(${entry.bg_truecolor})`;
    } else if (entry.bg) {
      classes.push(`${entry.bg}-bg`);
    }
    for (const decoration of entry.decorations) {
      classes.push(`ansi-${decoration}`);
    }
    segment.className = classes.join(' ');
    segments.push(segment);
  }
  return segments;
}

/** The text of a line without its escapes (what search matches on screen). */
export function plainText(line: string): string {
  return ansiSegments(line)
    .map(s => s.text)
    .join('');
}

/** Split `text` around the case-insensitive occurrences of `query`: [text, isMatch] pairs. */
export function splitMatches(text: string, query: string): [string, boolean][] {
  if (!query) {
    return [[text, false]];
  }
  const parts: [string, boolean][] = [];
  const lower = text.toLowerCase();
  const needle = query.toLowerCase();
  let from = 0;
  for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, from)) {
    if (at > from) {
      parts.push([text.slice(from, at), false]);
    }
    parts.push([text.slice(at, at + needle.length), true]);
    from = at + needle.length;
  }
  if (from < text.length || parts.length === 0) {
    parts.push([text.slice(from), false]);
  }
  return parts;
}
