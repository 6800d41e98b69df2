/**
 * A React view of one {@link Chart}: it is made once and fed the new columns on each render.
 */

import * as React from 'react';

import { Chart, IChartOptions } from '../charts';
import { IColumns } from './series';

export interface IChartViewProps {
  /** The chart's accessible name (and its `data-chart` attribute). */
  name: string;
  columns: IColumns;
  options: Omit<IChartOptions, 'series' | 'logScale'>;
  logScale?: boolean;
}

export function ChartView(props: IChartViewProps): JSX.Element {
  const host = React.useRef<HTMLDivElement>(null);
  const chart = React.useRef<Chart | null>(null);
  React.useEffect(() => {
    chart.current = new Chart(host.current!, {
      ...props.options,
      series: props.columns.labels.map(label => ({ label })),
      logScale: props.logScale
    });
    return () => {
      chart.current?.dispose();
      chart.current = null;
    };
  }, []);
  React.useEffect(() => {
    const c = chart.current!;
    c.setSeries(props.columns.labels.map(label => ({ label })));
    c.setLogScale(!!props.logScale);
    c.setData(props.columns.x, props.columns.ys);
  }, [props.columns, props.logScale]);
  return (
    <figure className="aicloud-chart-figure" aria-label={props.name}>
      <div ref={host} data-chart={props.name} />
    </figure>
  );
}
