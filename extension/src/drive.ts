/**
 * A read-only contents drive serving executed run notebooks from the runtime,
 * so JupyterLab opens them like any notebook without copying them to disk.
 * Paths are `nbmesh-runs:<run_id>.ipynb`.
 */
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { NbmeshApi } from './api';

export const RUNS_DRIVE = 'nbmesh-runs';

export function runNotebookPath(runId: string): string {
  return `${RUNS_DRIVE}:${runId}.ipynb`;
}

function readOnly(): Promise<never> {
  return Promise.reject(new Error('Executed run notebooks are read-only.'));
}

export class RunsDrive implements Contents.IDrive {
  readonly name = RUNS_DRIVE;
  private readonly _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
  private _disposed = false;

  constructor(private readonly _api: NbmeshApi) {}

  get serverSettings(): ServerConnection.ISettings {
    return this._api.settings;
  }

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const name = localPath.split('/').pop() ?? '';
    if (!name) {
      return {
        name: '',
        path: '',
        type: 'directory',
        format: 'json',
        content: [],
        created: '',
        last_modified: '',
        writable: false,
        mimetype: ''
      };
    }
    const runId = name.replace(/\.ipynb$/, '');
    const model: Contents.IModel = {
      name,
      path: localPath,
      type: 'notebook',
      format: 'json',
      content: null,
      created: '',
      last_modified: '',
      writable: false,
      mimetype: 'application/x-ipynb+json'
    };
    if (options?.content === false) {
      return model;
    }
    const notebook = await this._api.runNotebook(runId);
    const cells = (notebook.cells as Record<string, unknown>[] | undefined) ?? [];
    for (const cell of cells) {
      // JupyterLab honours `editable: false` by making the cell read-only.
      cell.metadata = { ...((cell.metadata as object) ?? {}), editable: false };
    }
    return { ...model, content: notebook };
  }

  getDownloadUrl(localPath: string): Promise<string> {
    const runId = (localPath.split('/').pop() ?? '').replace(/\.ipynb$/, '');
    return Promise.resolve(
      `${this._api.settings.baseUrl}nbmesh/api/runs/${encodeURIComponent(runId)}/notebook`
    );
  }

  newUntitled(): Promise<Contents.IModel> {
    return readOnly();
  }

  delete(): Promise<void> {
    return readOnly();
  }

  rename(): Promise<Contents.IModel> {
    return readOnly();
  }

  save(): Promise<Contents.IModel> {
    return readOnly();
  }

  copy(): Promise<Contents.IModel> {
    return readOnly();
  }

  createCheckpoint(): Promise<Contents.ICheckpointModel> {
    return readOnly();
  }

  listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return Promise.resolve([]);
  }

  restoreCheckpoint(): Promise<void> {
    return readOnly();
  }

  deleteCheckpoint(): Promise<void> {
    return readOnly();
  }
}
