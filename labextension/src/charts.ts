/**
 * The one chart wrapper of the extension: line charts over uPlot (MIT, ~50 kB, canvas, made
 * for live data), with axes and labels, a hover legend with every series' value, several
 * series, a log-scale toggle and live appending.
 *
 * The data model is uPlot's aligned columns: one x array and one y array per series, `null`
 * where a series has no value at that x (the line spans the gap).
 */

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** One line of a chart. */
export interface IChartSeries {
  label: string;
  /** A CSS colour; by default the next of {@link PALETTE}. */
  color?: string;
}

export interface IChartOptions {
  xLabel: string;
  yLabel: string;
  series: IChartSeries[];
  title?: string;
  /** Whether x holds epoch seconds (a time axis), else plain numbers. */
  xTime?: boolean;
  logScale?: boolean;
  /** Pixels; the width follows the host element. */
  height?: number;
  /** How y values are written on the axis and in the hover legend. */
  format?: (value: number) => string;
}

/** y values per series, aligned on the x values. */
export type SeriesValues = (number | null)[][];

/** Distinct colours that read on light and dark themes. */
export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf'
];

/** A compact number: 3 significant digits, k/M/G suffixes for large ones. */
export function compactNumber(value: number): string {
  const size = Math.abs(value);
  if (size >= 1e9) {
    return `${+(value / 1e9).toPrecision(3)}G`;
  }
  if (size >= 1e6) {
    return `${+(value / 1e6).toPrecision(3)}M`;
  }
  if (size >= 1e4) {
    return `${+(value / 1e3).toPrecision(3)}k`;
  }
  if (size === 0 || size >= 1) {
    return String(+value.toPrecision(4));
  }
  return value.toPrecision(3);
}

/** Values a log axis can show: zero and negative values become gaps. */
export function logSafe(values: (number | null)[]): (number | null)[] {
  return values.map(v => (v !== null && v > 0 ? v : null));
}

/** A live line chart in `host`; call {@link dispose} when the host goes away. */
export class Chart {
  constructor(
    readonly host: HTMLElement,
    options: IChartOptions
  ) {
    this._options = { ...options };
    this._ys = options.series.map(() => []);
    host.classList.add('aicloud-chart');
    this._resize = new ResizeObserver(() => this._fit());
    this._resize.observe(host);
    this._build();
  }

  /** The number of x values (points per series). */
  get points(): number {
    return this._x.length;
  }

  get logScale(): boolean {
    return !!this._options.logScale;
  }

  /** Replace all the data. */
  setData(x: number[], ys: SeriesValues): void {
    this._x = x.slice();
    this._ys = this._options.series.map((_, i) => (ys[i] ?? []).slice());
    this._draw();
  }

  /** Add one x value and each series' value there (`null`: none). */
  append(x: number, ys: (number | null)[]): void {
    this._x.push(x);
    this._ys.forEach((column, i) => column.push(ys[i] ?? null));
    this._draw();
  }

  /** Switch the y axis between linear and logarithmic. */
  setLogScale(on: boolean): void {
    if (on !== this.logScale) {
      this._options.logScale = on;
      this._build();
    }
  }

  /** New series (the data is kept where the labels stay). */
  setSeries(series: IChartSeries[]): void {
    const old = this._options.series.map(s => s.label);
    if (old.join('\u0000') === series.map(s => s.label).join('\u0000')) {
      return;
    }
    this._ys = series.map(s => {
      const at = old.indexOf(s.label);
      return at >= 0 ? this._ys[at] : this._x.map(() => null);
    });
    this._options.series = series;
    this._build();
  }

  dispose(): void {
    this._resize.disconnect();
    this._plot?.destroy();
    this._plot = null;
  }

  private _build(): void {
    this._plot?.destroy();
    const o = this._options;
    const style = getComputedStyle(this.host);
    const ink = style.getPropertyValue('--jp-ui-font-color1').trim() || '#333';
    const grid = style.getPropertyValue('--jp-border-color2').trim() || '#ddd';
    const format = o.format ?? compactNumber;
    const axis = (label: string): uPlot.Axis => ({
      label,
      stroke: ink,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 }
    });
    const opts: uPlot.Options = {
      title: o.title,
      width: this._width(),
      height: o.height ?? 220,
      scales: { x: { time: !!o.xTime }, y: { distr: o.logScale ? 3 : 1 } },
      axes: [
        axis(o.xLabel),
        {
          ...axis(o.yLabel),
          size: 60,
          values: (_u, ticks) => ticks.map(t => (t === null ? '' : format(t)))
        }
      ],
      series: [
        { label: o.xLabel, value: o.xTime ? undefined : (_u, v) => (v === null ? '–' : format(v)) },
        ...o.series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
          points: { show: false },
          value: (_u: uPlot, v: number | null) => (v === null ? '–' : format(v))
        }))
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } }
    };
    this._plot = new uPlot(opts, this._data(), this.host);
    this.host.dataset.points = String(this._x.length);
    this.host.dataset.scale = o.logScale ? 'log' : 'linear';
  }

  private _data(): uPlot.AlignedData {
    const ys = this.logScale ? this._ys.map(logSafe) : this._ys;
    return [this._x, ...ys] as uPlot.AlignedData;
  }

  private _draw(): void {
    this._plot?.setData(this._data());
    this.host.dataset.points = String(this._x.length);
  }

  private _width(): number {
    return Math.max(200, Math.floor(this.host.clientWidth || 600));
  }

  private _fit(): void {
    if (this._plot && this.host.clientWidth > 0 && this._plot.width !== this._width()) {
      this._plot.setSize({ width: this._width(), height: this._plot.height });
    }
  }

  private _options: IChartOptions;
  private _plot: uPlot | null = null;
  private _x: number[] = [];
  private _ys: (number | null)[][];
  private _resize: ResizeObserver;
}
