/**
 * The "Data products" side panel: the catalog with search, and per product its
 * versions, parameter schema, triggers, recent runs and a Try it form.
 */
import { Widget } from '@lumino/widgets';

import { ApiError, describeProblem, IProduct, IRun, NbmeshApi } from './api';
import { buildParameterForm } from './schema';

export interface IPanelOptions {
  api: NbmeshApi;
  openRunNotebook: (run: IRun) => void;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** Whether a product matches the search box: name, title, owner or description. */
export function matches(product: IProduct, query: string): boolean {
  const needle = query.trim().toLowerCase();
  if (!needle) {
    return true;
  }
  return [product.name, product.title, product.owner, product.description]
    .filter((part): part is string => typeof part === 'string')
    .some(part => part.toLowerCase().includes(needle));
}

/** The products the search shows. */
export function shownCount(products: IProduct[], query: string): number {
  return products.filter(product => matches(product, query)).length;
}

/** The status line: how many products the search shows, of how many, and where. */
export function countLabel(total: number, shown: number, query: string, url: string): string {
  const plural = (n: number) => `${n} product${n === 1 ? '' : 's'}`;
  return query.trim() && shown !== total
    ? `${shown} of ${plural(total)} match "${query.trim()}" at ${url}`
    : `${plural(total)} at ${url}`;
}

/**
 * One format for every date in the panel: the browser's locale, date and time
 * to the minute. `locale` and `timeZone` are for tests; text that is not a
 * date is shown as it is.
 */
export function formatDate(iso: string | null | undefined, locale?: string, timeZone?: string): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(date);
}

/** Whether a run may still change: the panel polls while it shows one. */
export function isActive(run: IRun): boolean {
  return run.status === 'queued' || run.status === 'running';
}

/** The tab title of a run's notebook: product@version · when it ran. */
export function runTitle(run: IRun, locale?: string, timeZone?: string): string {
  return `${run.product}@${run.version} · ${formatDate(run.started_at ?? run.created_at, locale, timeZone)}`;
}

export function describeTrigger(trigger: Record<string, unknown>): string {
  const parameters =
    trigger.parameters && Object.keys(trigger.parameters as object).length
      ? ` with ${JSON.stringify(trigger.parameters)}`
      : '';
  if (typeof trigger.schedule === 'string') {
    const zone = typeof trigger.timezone === 'string' ? trigger.timezone : 'UTC';
    return `on schedule ${trigger.schedule} (${zone})${parameters}`;
  }
  if (typeof trigger.event === 'string') {
    return `on event ${trigger.event}${parameters}`;
  }
  return JSON.stringify(trigger);
}

export function describeRunTrigger(run: IRun): string {
  const trigger = run.trigger;
  if (!trigger) {
    return '';
  }
  if (trigger.kind === 'schedule') {
    return `schedule ${trigger.schedule ?? ''}`.trim();
  }
  if (trigger.kind === 'event') {
    return `event ${trigger.topic ?? ''}`.trim();
  }
  return trigger.kind;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) {
    return '–';
  }
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Seconds between two reads of the runs while one is queued or running. */
const POLL_MS = 2000;

export class ProductsPanel extends Widget {
  private readonly _api: NbmeshApi;
  private readonly _openRunNotebook: (run: IRun) => void;
  private readonly _status = el('div', 'nbmesh-Panel-status');
  private readonly _search = el('input', 'nbmesh-Panel-search jp-mod-styled');
  private readonly _list = el('ul', 'nbmesh-Catalog');
  private readonly _expanded = new Set<string>();
  private _products: IProduct[] = [];
  private _url = '';

  constructor(options: IPanelOptions) {
    super();
    this._api = options.api;
    this._openRunNotebook = options.openRunNotebook;
    this.id = 'nbmesh-products';
    this.addClass('nbmesh-Panel');

    const header = el('div', 'nbmesh-Panel-header');
    header.appendChild(el('h2', '', 'Data products'));
    const refresh = el('button', 'nbmesh-Panel-refresh jp-Button jp-mod-minimal', '⟳');
    refresh.title = 'Refresh the catalog';
    refresh.addEventListener('click', () => void this.refresh());
    header.appendChild(refresh);
    this.node.appendChild(header);

    this._search.type = 'search';
    this._search.placeholder = 'Search name, owner, description';
    this._search.addEventListener('input', () => this._filter());
    this.node.appendChild(this._search);
    this.node.appendChild(this._status);
    this.node.appendChild(this._list);
  }

  /** Reload the catalog, keeping open products open. */
  async refresh(): Promise<void> {
    this._status.textContent = 'Loading…';
    try {
      const info = await this._api.info();
      this._products = await this._api.products();
      this._url = info.url;
      this._status.classList.remove('nbmesh-Error');
    } catch (reason) {
      this._products = [];
      this._status.textContent = `The runtime did not answer: ${
        reason instanceof Error ? reason.message : reason
      }`;
      this._status.classList.add('nbmesh-Error');
    }
    this._render();
  }

  /** Open a product's details and bring it into view. */
  async reveal(name: string): Promise<void> {
    this._expanded.add(name);
    await this.refresh();
    this._list
      .querySelector(`[data-product="${CSS.escape(name)}"]`)
      ?.scrollIntoView({ block: 'nearest' });
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private _render(): void {
    this._list.replaceChildren(
      ...this._products.map(product => this._renderProduct(product))
    );
    this._filter();
  }

  private _filter(): void {
    const query = this._search.value;
    if (!this._status.classList.contains('nbmesh-Error')) {
      this._status.textContent = countLabel(
        this._products.length,
        shownCount(this._products, query),
        query,
        this._url
      );
    }
    for (const product of this._products) {
      const item = this._list.querySelector<HTMLElement>(
        `[data-product="${CSS.escape(product.name)}"]`
      );
      if (item) {
        item.hidden = !matches(product, query);
      }
    }
  }

  private _renderProduct(product: IProduct): HTMLElement {
    const item = el('li', 'nbmesh-Product');
    item.dataset.product = product.name;
    const head = el('button', 'nbmesh-Product-head');
    head.appendChild(el('span', 'nbmesh-Product-name', product.name));
    head.appendChild(el('span', 'nbmesh-Product-version', `v${product.version}`));
    if (product.owner) {
      head.appendChild(el('span', 'nbmesh-Product-owner', product.owner));
    }
    if (product.title) {
      head.appendChild(el('span', 'nbmesh-Product-title', product.title));
    }
    item.appendChild(head);
    const body = el('div', 'nbmesh-Product-body');
    item.appendChild(body);
    const open = () => {
      item.classList.add('nbmesh-mod-open');
      void this._renderDetails(body, product.name, product);
    };
    head.addEventListener('click', () => {
      if (this._expanded.has(product.name)) {
        this._expanded.delete(product.name);
        item.classList.remove('nbmesh-mod-open');
        body.replaceChildren();
      } else {
        this._expanded.add(product.name);
        open();
      }
    });
    if (this._expanded.has(product.name)) {
      open();
    }
    return item;
  }

  private async _renderDetails(
    body: HTMLElement,
    name: string,
    product: IProduct
  ): Promise<void> {
    body.replaceChildren();
    if (product.description) {
      body.appendChild(el('p', 'nbmesh-Product-description', product.description));
    }
    if (product.published_at) {
      body.appendChild(
        el('p', 'nbmesh-muted', `Version ${product.version} published ${formatDate(product.published_at)}`)
      );
    }

    const versions = el('label', 'nbmesh-Versions');
    versions.appendChild(el('span', 'nbmesh-Section', 'Version'));
    const select = el('select', 'nbmesh-Versions-select jp-mod-styled');
    for (const version of [...product.versions].reverse()) {
      const option = el('option', '', `v${version}${version === product.version ? ' (latest)' : ''}`);
      option.value = String(version);
      select.appendChild(option);
    }
    select.value = String(product.version);
    versions.appendChild(select);
    body.appendChild(versions);

    const versioned = el('div', 'nbmesh-Versioned');
    body.appendChild(versioned);
    const runs = el('div', 'nbmesh-Runs');
    body.appendChild(runs);

    const show = async (version: number) => {
      let shown = product;
      if (version !== product.version) {
        try {
          shown = await this._api.product(`${name}@${version}`);
        } catch (reason) {
          versioned.replaceChildren(el('p', 'nbmesh-Error', String(reason)));
          return;
        }
      }
      this._renderVersion(versioned, shown, version === product.version, () =>
        this._renderRuns(runs, name)
      );
    };
    select.addEventListener('change', () => void show(Number(select.value)));
    await show(product.version);
    await this._renderRuns(runs, name);
  }

  private _renderVersion(
    container: HTMLElement,
    product: IProduct,
    latest: boolean,
    onRun: () => Promise<void>
  ): void {
    container.replaceChildren();
    container.appendChild(el('h3', 'nbmesh-Section', 'Parameters'));
    const names = Object.keys(product.parameters ?? {});
    if (names.length) {
      // A list, not a table: the side panel is narrow.
      const list = el('ul', 'nbmesh-Parameters');
      for (const name of names) {
        const spec = product.parameters[name];
        const item = el('li');
        item.appendChild(el('code', 'nbmesh-Parameter-name', name));
        item.appendChild(el('span', 'nbmesh-Parameter-type', spec.type));
        if (spec.default !== undefined) {
          item.appendChild(el('code', 'nbmesh-Parameter-default', `= ${JSON.stringify(spec.default)}`));
        }
        if (spec.help) {
          item.appendChild(el('div', 'nbmesh-Parameter-help', spec.help));
        }
        list.appendChild(item);
      }
      container.appendChild(list);
    } else {
      container.appendChild(el('p', 'nbmesh-muted', 'No parameters.'));
    }

    container.appendChild(el('h3', 'nbmesh-Section', 'Triggers'));
    const triggers = product.triggers ?? [];
    if (triggers.length) {
      const list = el('ul', 'nbmesh-Triggers');
      for (const trigger of triggers) {
        list.appendChild(el('li', '', describeTrigger(trigger)));
      }
      container.appendChild(list);
    } else {
      container.appendChild(el('p', 'nbmesh-muted', 'Runs on request only.'));
    }

    container.appendChild(el('h3', 'nbmesh-Section', 'Lineage'));
    container.appendChild(this._renderLineage(product));

    container.appendChild(el('h3', 'nbmesh-Section', 'Try it'));
    const tryIt = el('div', 'nbmesh-TryIt');
    const form = buildParameterForm(product.parameters ?? {});
    tryIt.appendChild(form.node);
    const invoke = el('button', 'nbmesh-Invoke jp-Button jp-mod-styled jp-mod-accept', 'Invoke');
    tryIt.appendChild(invoke);
    const output = el('div', 'nbmesh-Output');
    tryIt.appendChild(output);
    container.appendChild(tryIt);

    const target = latest ? product.name : `${product.name}@${product.version}`;
    invoke.addEventListener('click', async () => {
      const { values, errors } = form.read();
      if (errors.length) {
        output.replaceChildren(renderError('Check the parameters', errors));
        return;
      }
      invoke.disabled = true;
      output.replaceChildren(el('p', 'nbmesh-muted', `Running ${target}…`));
      try {
        const run = await this._api.invoke(target, values);
        output.replaceChildren(renderResult(run));
      } catch (reason) {
        output.replaceChildren(renderFailure(reason));
      } finally {
        invoke.disabled = false;
      }
      await onRun();
    });
  }

  /** The products whose finished runs trigger this one, and those its runs trigger: each opens. */
  private _renderLineage(product: IProduct): HTMLElement {
    const box = el('div', 'nbmesh-Lineage');
    const line = (label: string, names: string[], direction: string) => {
      const row = el('p', `nbmesh-Lineage-${direction}`);
      row.appendChild(el('span', 'nbmesh-muted', `${label}: `));
      if (!names.length) {
        row.appendChild(el('span', 'nbmesh-muted', 'none'));
      }
      names.forEach((name, index) => {
        const link = el('button', 'nbmesh-Lineage-product jp-Button jp-mod-minimal', name);
        link.title = `Open ${name}`;
        link.addEventListener('click', () => void this.reveal(name));
        row.append(...(index ? [', '] : []), link);
      });
      return row;
    };
    box.append(
      line('Triggered by', product.upstream ?? [], 'upstream'),
      line('Triggers runs of', product.downstream ?? [], 'downstream')
    );
    return box;
  }

  private async _renderRuns(container: HTMLElement, name: string): Promise<void> {
    window.clearTimeout(Number(container.dataset.poll ?? 0));
    let runs: IRun[];
    try {
      runs = await this._api.runs(name, 10);
    } catch (reason) {
      container.replaceChildren(el('p', 'nbmesh-Error', String(reason)));
      return;
    }
    // Background runs (schedules, events, other clients) change on their own: read them again
    // while one is queued or running and the product stays open.
    if (runs.some(isActive)) {
      container.dataset.poll = String(
        window.setTimeout(() => {
          if (container.isConnected && this._expanded.has(name) && this.isVisible) {
            void this._renderRuns(container, name);
          }
        }, POLL_MS)
      );
    }
    container.replaceChildren(el('h3', 'nbmesh-Section', 'Recent runs'));
    if (!runs.length) {
      container.appendChild(el('p', 'nbmesh-muted', 'No runs yet.'));
      return;
    }
    const list = el('ul', 'nbmesh-RunTable');
    for (const run of runs) {
      const row = el('li', `nbmesh-Run nbmesh-Run-${run.status}`);
      row.dataset.runId = run.run_id;
      row.title = `run ${run.run_id}`;
      row.appendChild(el('span', 'nbmesh-Run-status', run.status));
      const id = el('span', 'nbmesh-Run-id', run.run_id);
      id.title = run.run_id;
      row.appendChild(id);
      const facts = [`v${run.version}`, formatDuration(run.duration_ms), describeRunTrigger(run)];
      row.appendChild(el('span', 'nbmesh-Run-facts', facts.filter(Boolean).join(' · ')));
      if (run.started_at) {
        row.appendChild(
          el('span', 'nbmesh-Run-started nbmesh-muted', formatDate(run.started_at))
        );
      }
      if (run.status !== 'queued' && run.status !== 'running') {
        const open = el('button', 'nbmesh-Run-open jp-Button jp-mod-minimal', 'notebook');
        open.title = 'Open the executed notebook, read-only';
        open.addEventListener('click', () => this._openRunNotebook(run));
        row.appendChild(open);
      }
      list.appendChild(row);
    }
    container.appendChild(list);
  }
}

function renderResult(run: IRun): HTMLElement {
  const box = el('div', 'nbmesh-Result');
  box.appendChild(
    el('p', 'nbmesh-muted nbmesh-Result-summary', `${run.status} in ${formatDuration(run.duration_ms)} · run ${run.run_id}`)
  );
  box.appendChild(el('pre', 'nbmesh-Result-json', JSON.stringify(run.result, null, 2)));
  return box;
}

function renderError(title: string, lines: string[], traceback?: string[]): HTMLElement {
  const box = el('div', 'nbmesh-Error');
  box.appendChild(el('strong', '', title));
  if (lines.length) {
    const list = el('ul');
    for (const line of lines) {
      list.appendChild(el('li', '', line));
    }
    box.appendChild(list);
  }
  if (traceback && traceback.length) {
    // Tracebacks come from the kernel with ANSI colour codes.
    const text = traceback.join('\n').replace(/\u001b\[[0-9;]*m/g, '');
    box.appendChild(el('pre', 'nbmesh-Traceback', text));
  }
  return box;
}

function renderFailure(reason: unknown): HTMLElement {
  if (reason instanceof ApiError) {
    if (reason.run) {
      const error = reason.run.error;
      return renderError(
        `Run ${reason.run.status}: ${reason.message}`,
        [],
        error?.traceback
      );
    }
    return renderError(reason.message, reason.problems.map(describeProblem));
  }
  return renderError(String(reason), []);
}
