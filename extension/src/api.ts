/**
 * The request layer: every call the browser makes goes to the Jupyter server's
 * `/nbmesh/` handlers, which forward to the runtime with its token, so the
 * page needs no CORS and never holds the runtime's credentials.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { components } from './openapi';

/*
 * The runtime's shapes, generated from its OpenAPI document (src/openapi.ts,
 * written by `jlpm build:types`): a field the runtime adds or drops shows up
 * here as a type error, not as a silent `undefined`.
 */
type Schemas = components['schemas'];

/** One parameter of a product, as the runtime describes it. */
export type IParameterSpec = Schemas['Parameter'];

export type IProduct = Schemas['Product'];

export type IRunError = Schemas['RunError'];

export type IRun = Schemas['Run'];

/** What the server extension says about the runtime it talks to. */
export interface IRuntimeInfo {
  url: string;
  token_required: boolean;
  available: boolean;
  started_by_lab: boolean;
  error?: string | null;
}

/** One problem the runtime found; `cell` is the cell's index when it names one. */
export interface IProblem {
  cell: number | null;
  message: string;
}

/**
 * An answer that was not a success. `problems` holds every detail the runtime
 * listed; `run` is set when the body was a failed or timed-out run.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: IProblem[] = [],
    readonly run: IRun | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Normalise the runtime's `details`: entries may be strings or `{cell, message}` objects. */
export function toProblems(details: unknown): IProblem[] {
  if (!Array.isArray(details)) {
    return [];
  }
  return details.map(detail => {
    if (typeof detail === 'string') {
      return { cell: null, message: detail };
    }
    if (detail && typeof detail === 'object') {
      const entry = detail as Record<string, unknown>;
      const cell = typeof entry.cell === 'number' ? entry.cell : null;
      const message =
        typeof entry.message === 'string'
          ? entry.message
          : JSON.stringify(detail);
      return { cell, message };
    }
    return { cell: null, message: JSON.stringify(detail) };
  });
}

/**
 * A one-line description of a problem that names its cell. `cell` is the
 * 0-based index; messages number cells from 1, as JupyterLab's status bar
 * does, and often name the cell themselves: never say it twice.
 */
export function describeProblem(problem: IProblem): string {
  if (problem.cell === null) {
    return problem.message;
  }
  const number = problem.cell + 1;
  const named = new RegExp(`\\bcells? (\\d+, )*${number}\\b`, 'i');
  return named.test(problem.message)
    ? problem.message
    : `Cell ${number}: ${problem.message}`;
}

function isRun(body: unknown): body is IRun {
  return (
    !!body &&
    typeof body === 'object' &&
    'run_id' in (body as object) &&
    'status' in (body as object)
  );
}

export class NbmeshApi {
  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  info(): Promise<IRuntimeInfo> {
    return this.request<IRuntimeInfo>('GET', 'info');
  }

  async products(): Promise<IProduct[]> {
    const body = await this.request<{ products: IProduct[] }>(
      'GET',
      'api/products'
    );
    return body.products;
  }

  product(name: string): Promise<IProduct> {
    return this.request<IProduct>('GET', `api/products/${enc(name)}`);
  }

  /**
   * Publish a notebook; a 422 rejects with every problem in `ApiError.problems`.
   * With its `path` in the contents root, the server sends the files its
   * `metadata.nbmesh.files` names from the notebook's folder along with it.
   */
  publish(name: string, notebook: unknown, path?: string): Promise<IProduct> {
    const target =
      path === undefined
        ? `api/products/${enc(name)}`
        : `publish/${enc(name)}?path=${encodeURIComponent(path)}`;
    return this.request<IProduct>('PUT', target, notebook);
  }

  /**
   * Every problem of a notebook, checked by the runtime's own rules in the
   * Jupyter server, without storing anything: for a name the runtime's URL
   * cannot carry. `name` null means the notebook's metadata names it.
   */
  async check(name: string | null, notebook: unknown): Promise<IProblem[]> {
    const body = await this.request<{ details: unknown }>('POST', 'check', { name, notebook });
    return toProblems(body.details);
  }

  /** Run now and wait; a failed or timed-out run rejects with `ApiError.run` set. */
  invoke(name: string, parameters: Record<string, unknown>): Promise<IRun> {
    return this.request<IRun>(
      'POST',
      `api/products/${enc(name)}/invoke`,
      parameters
    );
  }

  async runs(name: string, limit = 10): Promise<IRun[]> {
    const body = await this.request<{ runs: IRun[] }>(
      'GET',
      `api/products/${enc(name)}/runs?limit=${limit}`
    );
    return body.runs;
  }

  run(runId: string): Promise<IRun> {
    return this.request<IRun>('GET', `api/runs/${enc(runId)}`);
  }

  runNotebook(runId: string): Promise<Record<string, unknown>> {
    return this.request('GET', `api/runs/${enc(runId)}/notebook`);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, 'nbmesh', path);
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (reason) {
      throw new ApiError(0, `Cannot reach the Jupyter server: ${reason}`);
    }
    const text = await response.text();
    let data: unknown = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (response.ok) {
      return data as T;
    }
    if (isRun(data)) {
      const error = data.error;
      const message = error
        ? `${error.ename}: ${error.evalue}`
        : `The run ended ${data.status}.`;
      throw new ApiError(response.status, message, [], data);
    }
    if (data && typeof data === 'object' && 'error' in data) {
      const record = data as { error: unknown; details?: unknown };
      throw new ApiError(
        response.status,
        String(record.error),
        toProblems(record.details)
      );
    }
    throw new ApiError(
      response.status,
      typeof data === 'string' && data
        ? data
        : `${response.status} ${response.statusText}`
    );
  }
}

function enc(segment: string): string {
  // '@' stays readable: it is how a caller pins a version (name@version).
  return encodeURIComponent(segment).replace(/%40/g, '@');
}
