/**
 * The product settings dialog: edits `metadata.nbmesh` of a notebook. Save
 * checks the name, timeout, triggers (cron, time zone, parameters) and the
 * output schema's JSON, and lists every problem at once; what the values mean
 * beyond that is the runtime's to judge at publish.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import {
  cronProblem,
  nameFromPath,
  nameProblem,
  parseJson,
  timeoutProblem,
  timezoneProblem
} from './validate';

type Metadata = Record<string, unknown>;

/** The runtime's timeout when the notebook sets none (model/product.py DEFAULT_TIMEOUT). */
export const DEFAULT_TIMEOUT = 60;

/** One trigger as the form edits it; `extra` keeps keys the form does not show. */
export interface ITriggerRow {
  kind: 'schedule' | 'event';
  value: string;
  timezone: string;
  parameters: string;
  extra: Record<string, unknown>;
}

export interface IRaw {
  name: string;
  title: string;
  description: string;
  owner: string;
  timeout: string;
  triggers: ITriggerRow[];
  output_schema: string;
}

const TEXT_KEYS = ['name', 'title', 'description', 'owner'] as const;

export function triggerRows(triggers: unknown): ITriggerRow[] {
  if (!Array.isArray(triggers)) {
    return [];
  }
  return triggers
    .filter((entry): entry is Record<string, unknown> => !!entry && typeof entry === 'object')
    .map(entry => {
      const { schedule, event, timezone, parameters, ...extra } = entry;
      return {
        kind: typeof event === 'string' && typeof schedule !== 'string' ? 'event' : 'schedule',
        value: typeof schedule === 'string' ? schedule : typeof event === 'string' ? event : '',
        timezone: typeof timezone === 'string' ? timezone : '',
        parameters:
          parameters === undefined || (typeof parameters === 'object' && parameters && !Object.keys(parameters).length)
            ? ''
            : JSON.stringify(parameters),
        extra
      };
    });
}

export function toRaw(metadata: Metadata): IRaw {
  const text = (key: string) =>
    typeof metadata[key] === 'string' ? (metadata[key] as string) : '';
  return {
    name: text('name'),
    title: text('title'),
    description: text('description'),
    owner: text('owner'),
    timeout: metadata.timeout === undefined ? '' : String(metadata.timeout),
    triggers: triggerRows(metadata.triggers),
    output_schema:
      metadata.output_schema === undefined ? '' : JSON.stringify(metadata.output_schema, null, 2)
  };
}

/** One trigger from its row, or the problems with it (`label` names the row). */
export function triggerFromRow(
  row: ITriggerRow,
  label: string
): { trigger?: Record<string, unknown>; problems: string[] } {
  const problems: string[] = [];
  const trigger: Record<string, unknown> = { ...row.extra };
  const value = row.value.trim();
  if (row.kind === 'schedule') {
    const problem = value ? cronProblem(value) : 'a schedule needs a cron expression, e.g. "0 6 * * *".';
    if (problem) {
      problems.push(`${label}: ${problem}`);
    }
    trigger.schedule = value;
    const zone = row.timezone.trim();
    if (zone) {
      const zoneProblem = timezoneProblem(zone);
      if (zoneProblem) {
        problems.push(`${label}: ${zoneProblem}`);
      }
      trigger.timezone = zone;
    }
  } else {
    if (!value) {
      problems.push(`${label}: an event trigger needs a topic, e.g. "orders.updated".`);
    }
    trigger.event = value;
  }
  const parameters = row.parameters.trim();
  if (parameters) {
    const { value: parsed, problem } = parseJson(`${label}: the parameters`, parameters);
    if (problem) {
      problems.push(problem);
    } else if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      problems.push(`${label}: the parameters must be a JSON object like {"region": "EU"}.`);
    } else {
      trigger.parameters = parsed;
    }
  }
  return problems.length ? { problems } : { trigger, problems };
}

/**
 * Merge the edited fields into the existing metadata (empty fields removed,
 * unknown keys kept), or list every problem. `fileName` is the name the
 * notebook publishes under when the name field is empty.
 */
export function fromRaw(
  raw: IRaw,
  previous: Metadata,
  fileName: string
): { metadata?: Metadata; problems: string[] } {
  const problems: string[] = [];
  const metadata: Metadata = { ...previous };
  for (const key of TEXT_KEYS) {
    const value = raw[key].trim();
    if (value) {
      metadata[key] = value;
    } else {
      delete metadata[key];
    }
  }
  const name = raw.name.trim();
  const badName = nameProblem(name || fileName);
  if (badName) {
    problems.push(name ? badName : `${badName} It comes from the file name: set a name.`);
  }
  if (raw.timeout.trim()) {
    const problem = timeoutProblem(raw.timeout);
    if (problem) {
      problems.push(problem);
    } else {
      metadata.timeout = Number(raw.timeout.trim());
    }
  } else {
    delete metadata.timeout;
  }
  const triggers = raw.triggers.map((row, index) => {
    const { trigger, problems: rowProblems } = triggerFromRow(row, `Trigger ${index + 1}`);
    problems.push(...rowProblems);
    return trigger;
  });
  if (triggers.length) {
    metadata.triggers = triggers;
  } else {
    delete metadata.triggers;
  }
  const schema = raw.output_schema.trim();
  if (schema) {
    const { value, problem } = parseJson('Output schema', schema);
    if (problem) {
      problems.push(problem);
    } else {
      metadata.output_schema = value;
    }
  } else {
    delete metadata.output_schema;
  }
  return problems.length ? { problems } : { metadata, problems };
}

function field(
  label: string,
  input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement
): HTMLLabelElement {
  const row = document.createElement('label');
  row.className = 'nbmesh-SettingsDialog-row';
  const caption = document.createElement('span');
  caption.textContent = label;
  row.append(caption, input);
  return row;
}

function textInput(name: string, value: string, placeholder = ''): HTMLInputElement {
  const input = document.createElement('input');
  input.type = 'text';
  input.className = 'jp-mod-styled';
  input.name = name;
  input.value = value;
  input.placeholder = placeholder;
  return input;
}

/** One trigger's row of the form: kind, cron or topic, time zone, parameters, remove. */
class TriggerEditor {
  readonly node = document.createElement('fieldset');
  private readonly _kind = document.createElement('select');
  private readonly _value: HTMLInputElement;
  private readonly _timezone: HTMLInputElement;
  private readonly _parameters: HTMLInputElement;

  constructor(private readonly _row: ITriggerRow, onRemove: (editor: TriggerEditor) => void) {
    this.node.className = 'nbmesh-Trigger';
    this._kind.className = 'jp-mod-styled';
    this._kind.name = 'nbmesh-trigger-kind';
    for (const [value, text] of [['schedule', 'On a schedule'], ['event', 'On an event']]) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = text;
      this._kind.appendChild(option);
    }
    this._kind.value = _row.kind;
    this._value = textInput('nbmesh-trigger-value', _row.value);
    this._timezone = textInput('nbmesh-trigger-timezone', _row.timezone, 'UTC (default)');
    this._parameters = textInput('nbmesh-trigger-parameters', _row.parameters, '{} (none)');
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'jp-Button jp-mod-minimal nbmesh-Trigger-remove';
    remove.textContent = 'Remove';
    remove.addEventListener('click', () => onRemove(this));
    const zoneRow = field('Time zone', this._timezone);
    const valueRow = field('', this._value);
    const sync = () => {
      const schedule = this._kind.value === 'schedule';
      valueRow.firstElementChild!.textContent = schedule ? 'Cron (minute hour day month weekday)' : 'Event topic';
      this._value.placeholder = schedule ? '0 6 * * *' : 'orders.updated';
      zoneRow.hidden = !schedule;
    };
    this._kind.addEventListener('change', sync);
    sync();
    const head = document.createElement('div');
    head.className = 'nbmesh-Trigger-head';
    head.append(this._kind, remove);
    this.node.append(head, valueRow, zoneRow, field('Parameters (JSON object)', this._parameters));
  }

  getValue(): ITriggerRow {
    return {
      kind: this._kind.value === 'event' ? 'event' : 'schedule',
      value: this._value.value,
      timezone: this._timezone.value,
      parameters: this._parameters.value,
      extra: this._row.extra
    };
  }
}

class SettingsBody extends Widget implements Dialog.IBodyWidget<IRaw> {
  private readonly _inputs = new Map<string, HTMLInputElement | HTMLTextAreaElement>();
  private readonly _triggers: TriggerEditor[] = [];

  constructor(raw: IRaw, fileName: string, problems: string[]) {
    super();
    this.addClass('nbmesh-SettingsDialog');
    if (problems.length) {
      const list = document.createElement('ul');
      list.className = 'nbmesh-SettingsDialog-problems nbmesh-Error';
      for (const problem of problems) {
        const item = document.createElement('li');
        item.textContent = problem;
        list.appendChild(item);
      }
      this.node.appendChild(list);
    }
    const fields: [keyof IRaw, string, 'input' | 'textarea', string][] = [
      ['name', 'Name', 'input', `${fileName} (from the file name)`],
      ['title', 'Title', 'input', ''],
      ['description', 'Description', 'textarea', ''],
      ['owner', 'Owner', 'input', 'team or domain'],
      ['timeout', 'Timeout (seconds)', 'input', `${DEFAULT_TIMEOUT} (default)`]
    ];
    for (const [key, label, kind, placeholder] of fields) {
      let input: HTMLInputElement | HTMLTextAreaElement;
      if (kind === 'textarea') {
        input = document.createElement('textarea');
        input.rows = 3;
        input.className = 'jp-mod-styled';
        input.name = `nbmesh-${key}`;
        input.value = raw[key] as string;
      } else {
        input = textInput(`nbmesh-${key}`, raw[key] as string, placeholder);
      }
      if (key === 'timeout') {
        input.setAttribute('inputmode', 'decimal');
      }
      this._inputs.set(key, input);
      this.node.appendChild(field(label, input));
    }

    const triggers = document.createElement('div');
    triggers.className = 'nbmesh-SettingsDialog-triggers';
    const caption = document.createElement('span');
    caption.textContent = 'Triggers';
    const list = document.createElement('div');
    const empty = document.createElement('p');
    empty.className = 'nbmesh-muted';
    empty.textContent = 'None: the product runs on request only.';
    const add = document.createElement('button');
    add.type = 'button';
    add.className = 'jp-Button jp-mod-styled nbmesh-Trigger-add';
    add.textContent = 'Add trigger';
    const addRow = (row: ITriggerRow) => {
      const editor = new TriggerEditor(row, removed => {
        this._triggers.splice(this._triggers.indexOf(removed), 1);
        removed.node.remove();
        empty.hidden = this._triggers.length > 0;
      });
      this._triggers.push(editor);
      list.appendChild(editor.node);
      empty.hidden = true;
    };
    add.addEventListener('click', () =>
      addRow({ kind: 'schedule', value: '', timezone: '', parameters: '', extra: {} })
    );
    raw.triggers.forEach(addRow);
    empty.hidden = this._triggers.length > 0;
    triggers.append(caption, empty, list, add);
    this.node.appendChild(triggers);

    const schema = document.createElement('textarea');
    schema.rows = 4;
    schema.className = 'jp-mod-styled';
    schema.name = 'nbmesh-output_schema';
    schema.placeholder = '{"type": "object"}';
    schema.value = raw.output_schema;
    this._inputs.set('output_schema', schema);
    this.node.appendChild(field('Output schema (JSON Schema, optional)', schema));
  }

  getValue(): IRaw {
    const value = (key: string) => this._inputs.get(key)?.value ?? '';
    return {
      name: value('name'),
      title: value('title'),
      description: value('description'),
      owner: value('owner'),
      timeout: value('timeout'),
      triggers: this._triggers.map(editor => editor.getValue()),
      output_schema: value('output_schema')
    };
  }
}

/** Open the dialog for a notebook; Save with problems reopens it with what was typed and every problem. */
export async function editProductSettings(panel: NotebookPanel): Promise<boolean> {
  const model = panel.content.model;
  if (!model) {
    return false;
  }
  const previous = (model.getMetadata('nbmesh') as Metadata | undefined) ?? {};
  const fileName = nameFromPath(panel.context.path);
  let raw = toRaw(previous);
  let problems: string[] = [];
  for (;;) {
    const result = await showDialog({
      title: 'Data product settings',
      body: new SettingsBody(raw, fileName, problems),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || !result.value) {
      return false;
    }
    raw = result.value;
    const checked = fromRaw(raw, previous, fileName);
    problems = checked.problems;
    if (!checked.metadata) {
      continue;
    }
    if (Object.keys(checked.metadata).length) {
      model.setMetadata('nbmesh', checked.metadata);
    } else {
      model.deleteMetadata('nbmesh');
    }
    return true;
  }
}
