/**
 * The API client wired to the Jupyter server: `ServerConnection.makeRequest` adds the token
 * or the `X-XSRFToken` header and the base URL comes from the server settings, so the same
 * code works under any base URL and behind JupyterHub.
 */

import { ServerConnection } from '@jupyterlab/services';

import { AICloudAPI } from './api';

export function serverAPI(settings: ServerConnection.ISettings): AICloudAPI {
  return new AICloudAPI(settings.baseUrl, (url, init) =>
    ServerConnection.makeRequest(url, init, settings)
  );
}
