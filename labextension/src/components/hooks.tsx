/**
 * React hooks for live data: poll an API call, and keep errors to show inline.
 */

import * as React from 'react';

export interface IPolled<T> {
  data: T | null;
  error: string | null;
  /** Fetch again now. */
  refresh: () => void;
}

/** The message of anything thrown by an API call. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/**
 * Call `load` now and every `intervalMs` while the component is shown (and `deps` stay);
 * an interval of 0 loads once. A slow answer never overwrites a newer one.
 */
export function usePoll<T>(
  load: () => Promise<T>,
  intervalMs: number,
  deps: React.DependencyList
): IPolled<T> {
  const [data, setData] = React.useState<T | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    let alive = true;
    let serial = 0;
    let timer: number | undefined;
    const run = async () => {
      const mine = ++serial;
      try {
        const value = await load();
        if (alive && mine === serial) {
          setData(value);
          setError(null);
        }
      } catch (e) {
        if (alive && mine === serial) {
          setError(messageOf(e));
        }
      }
      if (alive && intervalMs > 0) {
        timer = window.setTimeout(run, intervalMs);
      }
    };
    void run();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [...deps, tick, intervalMs]);
  return { data, error, refresh: () => setTick(t => t + 1) };
}

/** Run an action, tracking whether it is busy and its error message. */
export function useAction(): {
  busy: boolean;
  error: string | null;
  run: (action: () => Promise<unknown>) => Promise<boolean>;
  clear: () => void;
} {
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);
  const mounted = React.useRef(true);
  React.useEffect(
    () => () => {
      mounted.current = false;
    },
    []
  );
  const run = async (action: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
      return true;
    } catch (e) {
      if (mounted.current) {
        setError(messageOf(e));
      }
      return false;
    } finally {
      if (mounted.current) {
        setBusy(false);
      }
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}

/** An inline error line, announced to screen readers; nothing when there is no error. */
export function ErrorLine(props: { error: string | null }): JSX.Element | null {
  if (!props.error) {
    return null;
  }
  return (
    <p className="aicloud-error" role="alert">
      {props.error}
    </p>
  );
}
