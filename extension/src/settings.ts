/**
 * The product settings dialog: edits `metadata.nbmesh` of a notebook. Only
 * JSON syntax is checked here; what the values mean is the runtime's to judge
 * at publish.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

type Metadata = Record<string, unknown>;

interface IRaw {
  name: string;
  title: string;
  description: string;
  owner: string;
  timeout: string;
  triggers: string;
  output_schema: string;
}

const TEXT_KEYS = ['name', 'title', 'description', 'owner'] as const;

function toRaw(metadata: Metadata): IRaw {
  const text = (key: string) =>
    typeof metadata[key] === 'string' ? (metadata[key] as string) : '';
  const json = (key: string) =>
    metadata[key] === undefined ? '' : JSON.stringify(metadata[key], null, 2);
  return {
    name: text('name'),
    title: text('title'),
    description: text('description'),
    owner: text('owner'),
    timeout: metadata.timeout === undefined ? '' : String(metadata.timeout),
    triggers: json('triggers'),
    output_schema: json('output_schema')
  };
}

/** Merge the edited fields into the existing metadata; empty fields are removed, unknown keys kept. */
export function fromRaw(raw: IRaw, previous: Metadata): { metadata?: Metadata; error?: string } {
  const metadata: Metadata = { ...previous };
  for (const key of TEXT_KEYS) {
    const value = raw[key].trim();
    if (value) {
      metadata[key] = value;
    } else {
      delete metadata[key];
    }
  }
  const timeout = raw.timeout.trim();
  if (timeout) {
    const seconds = Number(timeout);
    if (!Number.isFinite(seconds)) {
      return { error: `Timeout must be a number of seconds, not "${timeout}".` };
    }
    metadata.timeout = seconds;
  } else {
    delete metadata.timeout;
  }
  for (const key of ['triggers', 'output_schema'] as const) {
    const text = raw[key].trim();
    if (!text) {
      delete metadata[key];
      continue;
    }
    try {
      metadata[key] = JSON.parse(text);
    } catch (reason) {
      const label = key === 'triggers' ? 'Triggers' : 'Output schema';
      return { error: `${label} is not valid JSON: ${(reason as Error).message}` };
    }
  }
  return { metadata };
}

class SettingsBody extends Widget implements Dialog.IBodyWidget<IRaw> {
  private readonly _inputs = new Map<keyof IRaw, HTMLInputElement | HTMLTextAreaElement>();

  constructor(raw: IRaw) {
    super();
    this.addClass('nbmesh-SettingsDialog');
    const fields: [keyof IRaw, string, string, string][] = [
      ['name', 'Name', 'input', 'lowercase letters, digits and dashes, e.g. sales-summary'],
      ['title', 'Title', 'input', ''],
      ['description', 'Description', 'textarea', ''],
      ['owner', 'Owner', 'input', 'team or domain'],
      ['timeout', 'Timeout (seconds)', 'number', ''],
      [
        'triggers',
        'Triggers (JSON list)',
        'textarea',
        '[{"schedule": "0 * * * *"}, {"event": "orders.updated"}]'
      ],
      ['output_schema', 'Output schema (JSON Schema)', 'textarea', '{"type": "object"}']
    ];
    for (const [key, label, kind, placeholder] of fields) {
      const row = document.createElement('label');
      row.className = 'nbmesh-SettingsDialog-row';
      const caption = document.createElement('span');
      caption.textContent = label;
      row.appendChild(caption);
      let input: HTMLInputElement | HTMLTextAreaElement;
      if (kind === 'textarea') {
        input = document.createElement('textarea');
        input.rows = key === 'description' ? 3 : 4;
      } else {
        input = document.createElement('input');
        input.type = kind === 'number' ? 'number' : 'text';
      }
      input.className = 'jp-mod-styled';
      input.name = `nbmesh-${key}`;
      input.placeholder = placeholder;
      input.value = raw[key];
      row.appendChild(input);
      this._inputs.set(key, input);
      this.node.appendChild(row);
    }
  }

  getValue(): IRaw {
    const value = (key: keyof IRaw) => this._inputs.get(key)?.value ?? '';
    return {
      name: value('name'),
      title: value('title'),
      description: value('description'),
      owner: value('owner'),
      timeout: value('timeout'),
      triggers: value('triggers'),
      output_schema: value('output_schema')
    };
  }
}

/** Open the dialog for a notebook; a JSON mistake reopens it with what was typed. */
export async function editProductSettings(panel: NotebookPanel): Promise<boolean> {
  const model = panel.content.model;
  if (!model) {
    return false;
  }
  const previous = (model.getMetadata('nbmesh') as Metadata | undefined) ?? {};
  let raw = toRaw(previous);
  for (;;) {
    const result = await showDialog({
      title: 'Data product settings',
      body: new SettingsBody(raw),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || !result.value) {
      return false;
    }
    raw = result.value;
    const { metadata, error } = fromRaw(raw, previous);
    if (error) {
      await showErrorMessage('Data product settings', error);
      continue;
    }
    if (metadata && Object.keys(metadata).length) {
      model.setMetadata('nbmesh', metadata);
    } else {
      model.deleteMetadata('nbmesh');
    }
    return true;
  }
}
