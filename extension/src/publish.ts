/**
 * Publish: send the notebook as it is in the editor (saved or not) to the
 * runtime, which validates it. Every problem it lists is shown with its cell;
 * a success shows the version, the invoke URL and a curl to try it.
 */
import {
  Clipboard,
  Dialog,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { ApiError, describeProblem, IProblem, IProduct, NbmeshApi } from './api';
import { curlCommand, invokeUrl } from './schema';
import { nameFromPath, nameProblem } from './validate';

const PROBLEM_CLASS = 'nbmesh-cell-problem';

/** The name the notebook's metadata gives, if any. */
function metadataName(panel: NotebookPanel): string | null {
  const metadata = panel.content.model?.getMetadata('nbmesh') as
    | { name?: unknown }
    | undefined;
  if (metadata && typeof metadata.name === 'string' && metadata.name.trim()) {
    return metadata.name.trim();
  }
  return null;
}

/** The name a notebook publishes under: its metadata's name, else the file's stem (as `nbmesh publish`). */
export function productName(panel: NotebookPanel): string {
  return metadataName(panel) ?? nameFromPath(panel.context.path);
}

/** The refusal's toast: short enough never to be cut (toasts show about 140 characters). */
export function refusalToast(name: string, count: number): string {
  const shown = name.length > 40 ? `${name.slice(0, 39)}…` : name;
  return count
    ? `${shown} was not published: ${count} problem${count > 1 ? 's' : ''} (nothing was stored).`
    : `${shown} was not published (nothing was stored).`;
}

export class Publisher {
  /** Emits each product that was published, so views can refresh. */
  readonly published = new Signal<this, IProduct>(this);

  constructor(
    private readonly _api: NbmeshApi,
    private readonly _openProduct: (name: string) => void
  ) {}

  async publish(panel: NotebookPanel): Promise<IProduct | null> {
    const model = panel.content.model;
    if (!model) {
      return null;
    }
    const name = productName(panel);
    clearProblems(panel);
    const id = Notification.emit(`Publishing ${name}…`, 'in-progress', {
      autoClose: false
    });
    let product: IProduct;
    try {
      if (nameProblem(name)) {
        // The runtime's URL cannot carry this name, so the Jupyter server checks the notebook by the
        // runtime's rules: the name's problem and every other one are listed together.
        const problems = await this._api.check(metadataName(panel) === null ? name : null, model.toJSON());
        throw new ApiError(422, 'The notebook is not a valid product.', problems);
      }
      product = await this._api.publish(name, model.toJSON(), panel.context.path);
    } catch (reason) {
      const error =
        reason instanceof ApiError ? reason : new ApiError(0, String(reason));
      // Every refusal lists its problems in one dialog; one without details is its own problem.
      const problems = error.problems.length ? error.problems : [{ cell: null, message: error.message }];
      // A new notification, not an update of the "Publishing…" one: JupyterLab drops an update that
      // arrives before that toast is on screen (seen on a loaded machine), and the outcome is lost.
      Notification.dismiss(id);
      Notification.error(refusalToast(name, error.problems.length), { autoClose: false });
      markProblems(panel, problems);
      await showProblems(panel, name, error.problems.length ? error.message : 'The runtime refused the notebook.', problems);
      return null;
    }
    let runtimeUrl = 'http://127.0.0.1:8765';
    let tokenRequired = false;
    try {
      const info = await this._api.info();
      runtimeUrl = info.url;
      tokenRequired = info.token_required;
    } catch {
      // The publish went through; the notification falls back to the default URL.
    }
    const curl = curlCommand(runtimeUrl, product.name, product.parameters, tokenRequired);
    const url = invokeUrl(runtimeUrl, product.name);
    // Toasts show about 140 characters, so the curl is one click away rather than cut off.
    Notification.dismiss(id);
    Notification.success(`Published ${product.name} version ${product.version}.\nInvoke: POST ${url}`, {
      autoClose: false,
      actions: [
        {
          label: 'Show curl',
          caption: 'The invoke URL and a ready curl command',
          callback: event => {
            event.preventDefault();
            void showInvocation(product, url, curl);
          }
        },
        {
          label: 'Copy curl',
          caption: curl,
          callback: event => {
            event.preventDefault();
            Clipboard.copyToSystem(curl);
          }
        },
        {
          label: 'Open in Data products',
          callback: () => this._openProduct(product.name)
        }
      ]
    });
    this.published.emit(product);
    return product;
  }
}

async function showInvocation(product: IProduct, url: string, curl: string): Promise<void> {
  const body = new Widget();
  body.addClass('nbmesh-Invocation');
  const lines: [string, string][] = [
    ['Invoke URL', `POST ${url}`],
    ['curl', curl]
  ];
  for (const [label, text] of lines) {
    const caption = document.createElement('p');
    caption.textContent = label;
    const pre = document.createElement('pre');
    pre.className = `nbmesh-Invocation-${label === 'curl' ? 'curl' : 'url'}`;
    pre.textContent = text;
    body.node.append(caption, pre);
  }
  const result = await showDialog({
    title: `${product.name} version ${product.version}`,
    body,
    buttons: [Dialog.cancelButton({ label: 'Close' }), Dialog.okButton({ label: 'Copy curl' })]
  });
  if (result.button.accept) {
    Clipboard.copyToSystem(curl);
  }
}

function cellNodes(panel: NotebookPanel): HTMLElement[] {
  return panel.content.widgets.map(cell => cell.node);
}

function clearProblems(panel: NotebookPanel): void {
  for (const node of cellNodes(panel)) {
    node.classList.remove(PROBLEM_CLASS);
    node.removeAttribute('data-nbmesh-problem');
  }
}

function markProblems(panel: NotebookPanel, problems: IProblem[]): void {
  const nodes = cellNodes(panel);
  for (const problem of problems) {
    if (problem.cell !== null && nodes[problem.cell]) {
      nodes[problem.cell].classList.add(PROBLEM_CLASS);
      nodes[problem.cell].setAttribute('data-nbmesh-problem', problem.message);
    }
  }
}

async function showProblems(
  panel: NotebookPanel,
  name: string,
  message: string,
  problems: IProblem[]
): Promise<void> {
  const body = new Widget();
  body.addClass('nbmesh-Problems');
  const summary = document.createElement('p');
  summary.textContent = `${message} Nothing was stored.`;
  body.node.appendChild(summary);
  const list = document.createElement('ul');
  for (const problem of problems) {
    const item = document.createElement('li');
    item.className = 'nbmesh-Problem';
    item.textContent = describeProblem(problem);
    if (problem.cell !== null) {
      const cell = problem.cell;
      item.classList.add('nbmesh-Problem-cell');
      item.title = 'Go to this cell';
      item.addEventListener('click', () => {
        panel.content.activeCellIndex = cell;
        void panel.content.scrollToItem(cell);
      });
    }
    list.appendChild(item);
  }
  body.node.appendChild(list);
  await showDialog({
    title: `Cannot publish ${name}`,
    body,
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}
