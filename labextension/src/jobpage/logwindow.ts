/**
 * The maths of the virtual log view (pure functions: unit-tested in Node).
 *
 * Only the lines in view (and a few around) are in the DOM. A tall spacer gives the scroll
 * bar its length; browsers cap an element's height (about 33 million px in Chromium, 17
 * million in Firefox), so past {@link MAX_SCROLL_PX} the scroll position is scaled: the
 * spacer stays at the cap and a scroll position maps proportionally onto the lines.
 */

/** The tallest spacer the view makes, in px. */
export const MAX_SCROLL_PX = 8_000_000;

export interface IGeometry {
  /** Lines in the (filtered) log. */
  total: number;
  /** px per line. */
  rowHeight: number;
  /** The viewport's height in px. */
  viewportHeight: number;
  maxScrollPx?: number;
}

/** The spacer's height: every line's, up to the cap. */
export function contentHeight(g: IGeometry): number {
  return Math.min(g.total * g.rowHeight, g.maxScrollPx ?? MAX_SCROLL_PX);
}

/** Virtual px (all lines at full height) per real scroll px. */
function scale(g: IGeometry): number {
  const real = contentHeight(g) - g.viewportHeight;
  const virtual = g.total * g.rowHeight - g.viewportHeight;
  return real > 0 && virtual > real ? virtual / real : 1;
}

export interface IWindow {
  /** The first line to render. */
  first: number;
  /** How many lines to render from `first`. */
  count: number;
  /** Where line `first` goes, in px from the spacer's top. */
  offsetPx: number;
}

/** The lines to render at scroll position `scrollTop`, with `overscan` lines either side. */
export function visibleWindow(g: IGeometry, scrollTop: number, overscan = 10): IWindow {
  if (g.total <= 0) {
    return { first: 0, count: 0, offsetPx: 0 };
  }
  const virtualTop = Math.max(0, scrollTop) * scale(g);
  const top = Math.min(Math.floor(virtualTop / g.rowHeight), g.total - 1);
  const first = Math.max(0, top - overscan);
  const inView = Math.ceil(g.viewportHeight / g.rowHeight) + 1;
  const count = Math.min(g.total - first, inView + 2 * overscan + (top - first - overscan));
  // line `top` sits where the viewport starts, less the part of it scrolled past
  const offsetPx = scrollTop - (virtualTop - top * g.rowHeight) - (top - first) * g.rowHeight;
  return { first, count: Math.max(0, count), offsetPx: Math.max(0, offsetPx) };
}

/** The scroll position that puts line `line` at the viewport's top (clamped). */
export function scrollTopFor(g: IGeometry, line: number): number {
  const max = Math.max(0, contentHeight(g) - g.viewportHeight);
  return Math.min(max, Math.max(0, (line * g.rowHeight) / scale(g)));
}

/** The scroll position of the log's end (the last line at the bottom). */
export function scrollTopOfEnd(g: IGeometry): number {
  return Math.max(0, contentHeight(g) - g.viewportHeight);
}

/** The pages (of `pageSize` lines) that hold lines `first` to `first + count`. */
export function pagesFor(first: number, count: number, pageSize: number): number[] {
  if (count <= 0) {
    return [];
  }
  const pages: number[] = [];
  for (let p = Math.floor(first / pageSize); p * pageSize < first + count; p++) {
    pages.push(p);
  }
  return pages;
}

/**
 * The position of line `n` (a line number of the whole log) in a filtered sequence, given
 * `lineAt(i)`, the whole-log number of the filtered sequence's i-th line (increasing in i):
 * the first i whose line is at or after n (a binary search, log2(total) probes).
 */
export async function positionOf(
  n: number,
  total: number,
  lineAt: (i: number) => Promise<number>
): Promise<number> {
  let low = 0;
  let high = total;
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    if ((await lineAt(mid)) < n) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low;
}
