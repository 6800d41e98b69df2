/**
 * A job's output files with previews: images inline, HTML reports in a sandboxed iframe (no
 * scripts, no same-origin access), notebooks opened in JupyterLab; every file downloadable.
 */

import * as React from 'react';

import { AICloudAPI } from '../api';
import { bytes } from '../format';
import { ErrorLine, useAction, usePoll } from '../components/hooks';
import { IOutput, TERMINAL_STATUSES } from '../tokens';

const IMAGE = /\.(png|jpe?g|gif|webp|svg)$/i;
const HTML = /\.html?$/i;
/** The largest HTML file previewed inline. */
const MAX_HTML_BYTES = 5 * 1024 * 1024;

/** The kind of preview an output gets. */
export function previewKind(name: string): 'image' | 'html' | 'notebook' | null {
  if (IMAGE.test(name)) {
    return 'image';
  }
  if (HTML.test(name)) {
    return 'html';
  }
  return name.endsWith('.ipynb') ? 'notebook' : null;
}

/** An output fetched with the API's authentication, as an object URL (revoked on unmount). */
function useBlobURL(api: AICloudAPI, jobId: string, name: string): string | null {
  const [url, setURL] = React.useState<string | null>(null);
  React.useEffect(() => {
    let made: string | null = null;
    let alive = true;
    void api.request('GET', ['jobs', jobId, 'outputs', name]).then(async response => {
      const blob = await response.blob();
      if (alive) {
        const type = name.toLowerCase().endsWith('.svg') ? 'image/svg+xml' : blob.type;
        made = URL.createObjectURL(new Blob([blob], { type }));
        setURL(made);
      }
    });
    return () => {
      alive = false;
      if (made) {
        URL.revokeObjectURL(made);
      }
    };
  }, [jobId, name]);
  return url;
}

function ImagePreview(props: { api: AICloudAPI; jobId: string; output: IOutput }): JSX.Element {
  const url = useBlobURL(props.api, props.jobId, props.output.name);
  return url ? <img className="aicloud-output-image" src={url} alt={props.output.name} /> : <span>…</span>;
}

function HTMLPreview(props: { api: AICloudAPI; jobId: string; output: IOutput }): JSX.Element {
  const polled = usePoll(
    async () => (await props.api.request('GET', ['jobs', props.jobId, 'outputs', props.output.name])).text(),
    0,
    [props.jobId, props.output.name]
  );
  if (props.output.size > MAX_HTML_BYTES) {
    return <p className="aicloud-muted">Too large to preview ({bytes(props.output.size)}).</p>;
  }
  return (
    <iframe
      className="aicloud-output-html"
      title={props.output.name}
      sandbox=""
      srcDoc={polled.data ?? ''}
    />
  );
}

export function OutputsSection(props: {
  api: AICloudAPI;
  jobId: string;
  status: string;
  openOutput: (jobId: string, output: IOutput) => Promise<void>;
}): JSX.Element | null {
  const ended = TERMINAL_STATUSES.has(props.status);
  const outputs = usePoll(() => props.api.outputs(props.jobId), ended ? 0 : 5000, [props.jobId, ended]);
  const action = useAction();
  if (!outputs.data?.length && !outputs.error) {
    return null;
  }
  return (
    <section className="aicloud-page-section aicloud-page-outputs" aria-label="Outputs">
      <h3>Outputs</h3>
      <ErrorLine error={outputs.error ?? action.error} />
      <ul className="aicloud-output-list">
        {(outputs.data ?? []).map(output => {
          const kind = previewKind(output.name);
          return (
            <li key={output.name} className="aicloud-output" data-output={output.name}>
              <div className="aicloud-output-head">
                <strong>{output.name}</strong> <span className="aicloud-muted">{bytes(output.size)}</span>{' '}
                {kind === 'notebook' && (
                  <button
                    className="aicloud-button aicloud-open-output"
                    disabled={action.busy}
                    onClick={() => action.run(() => props.openOutput(props.jobId, output))}
                  >
                    Open in JupyterLab
                  </button>
                )}{' '}
                <a href={props.api.outputURL(props.jobId, output.name)} download={output.name} className="aicloud-download">
                  Download
                </a>
              </div>
              {kind === 'image' && <ImagePreview api={props.api} jobId={props.jobId} output={output} />}
              {kind === 'html' && <HTMLPreview api={props.api} jobId={props.jobId} output={output} />}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
