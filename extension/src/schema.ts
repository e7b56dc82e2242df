/**
 * Everything built from a product's parameter schema: the Try it form (one
 * input per parameter type, values read back as JSON) and the ready-made curl
 * command shown after a publish.
 */
import type { IParameterSpec } from './api';

export interface IFormValues {
  values: Record<string, unknown>;
  errors: string[];
}

interface IField {
  name: string;
  spec: IParameterSpec;
  input: HTMLInputElement | HTMLTextAreaElement;
}

/** The form for one product; `read()` turns what the user typed into the parameters object. */
export class ParameterForm {
  readonly node: HTMLElement;
  private readonly _fields: IField[] = [];

  constructor(parameters: Record<string, IParameterSpec>, doc: Document = document) {
    this.node = doc.createElement('div');
    this.node.className = 'nbmesh-ParameterForm';
    const names = Object.keys(parameters);
    if (names.length === 0) {
      const empty = doc.createElement('p');
      empty.className = 'nbmesh-muted';
      empty.textContent = 'This product takes no parameters.';
      this.node.appendChild(empty);
    }
    for (const name of names) {
      const spec = parameters[name];
      const field = createField(doc, name, spec);
      this._fields.push({ name, spec, input: field.input });
      this.node.appendChild(field.row);
    }
  }

  /** The parameters as JSON values; an empty number or JSON field is left out so the default applies. */
  read(): IFormValues {
    const values: Record<string, unknown> = {};
    const errors: string[] = [];
    for (const { name, spec, input } of this._fields) {
      const parsed = parseValue(spec.type, input);
      if (parsed.error) {
        errors.push(`${name}: ${parsed.error}`);
      } else if (!parsed.omit) {
        values[name] = parsed.value;
      }
    }
    return { values, errors };
  }

  /** The input for one parameter, for callers that fill the form themselves. */
  input(name: string): HTMLInputElement | HTMLTextAreaElement | undefined {
    return this._fields.find(field => field.name === name)?.input;
  }
}

export function buildParameterForm(
  parameters: Record<string, IParameterSpec>,
  doc: Document = document
): ParameterForm {
  return new ParameterForm(parameters, doc);
}

function createField(
  doc: Document,
  name: string,
  spec: IParameterSpec
): { row: HTMLElement; input: HTMLInputElement | HTMLTextAreaElement } {
  const row = doc.createElement('label');
  row.className = 'nbmesh-ParameterForm-row';
  const caption = doc.createElement('span');
  caption.className = 'nbmesh-ParameterForm-name';
  caption.textContent = name;
  const type = doc.createElement('span');
  type.className = 'nbmesh-ParameterForm-type';
  type.textContent = spec.type;
  caption.appendChild(type);
  row.appendChild(caption);

  let input: HTMLInputElement | HTMLTextAreaElement;
  const fallback = spec.default;
  switch (spec.type) {
    case 'bool': {
      const box = doc.createElement('input');
      box.type = 'checkbox';
      box.checked = fallback === true;
      input = box;
      break;
    }
    case 'int':
    case 'float': {
      const number = doc.createElement('input');
      number.type = 'number';
      number.step = spec.type === 'int' ? '1' : 'any';
      number.value = typeof fallback === 'number' ? String(fallback) : '';
      input = number;
      break;
    }
    case 'str': {
      const text = doc.createElement('input');
      text.type = 'text';
      text.value = typeof fallback === 'string' ? fallback : '';
      input = text;
      break;
    }
    default: {
      // list, dict and any type the runtime may add later are edited as JSON.
      const area = doc.createElement('textarea');
      area.rows = 3;
      area.value = fallback === undefined ? '' : JSON.stringify(fallback, null, 1);
      input = area;
    }
  }
  input.name = `nbmesh-param-${name}`;
  input.dataset.param = name;
  input.className = 'nbmesh-ParameterForm-input';
  row.appendChild(input);
  if (spec.help) {
    const help = doc.createElement('span');
    help.className = 'nbmesh-ParameterForm-help';
    help.textContent = spec.help;
    row.appendChild(help);
  }
  return { row, input };
}

interface IParsed {
  value?: unknown;
  omit?: boolean;
  error?: string;
}

function parseValue(
  type: string,
  input: HTMLInputElement | HTMLTextAreaElement
): IParsed {
  if (type === 'bool') {
    return { value: (input as HTMLInputElement).checked };
  }
  const raw = input.value.trim();
  switch (type) {
    case 'str':
      return { value: input.value };
    case 'int':
      if (!raw) {
        return { omit: true };
      }
      return /^[-+]?\d+$/.test(raw)
        ? { value: Number(raw) }
        : { error: `expects a whole number, not "${raw}"` };
    case 'float': {
      if (!raw) {
        return { omit: true };
      }
      const value = Number(raw);
      return Number.isFinite(value)
        ? { value }
        : { error: `expects a number, not "${raw}"` };
    }
    default: {
      if (!raw) {
        return { omit: true };
      }
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch {
        return { error: 'is not valid JSON' };
      }
      if (type === 'list' && !Array.isArray(value)) {
        return { error: 'expects a JSON list, like [1, 2]' };
      }
      if (
        type === 'dict' &&
        (value === null || typeof value !== 'object' || Array.isArray(value))
      ) {
        return { error: 'expects a JSON object, like {"a": 1}' };
      }
      return { value };
    }
  }
}

/** Each parameter's default, the body a first invocation would send. */
export function defaultsOf(
  parameters: Record<string, IParameterSpec>
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(parameters)) {
    if (spec.default !== undefined) {
      values[name] = spec.default;
    }
  }
  return values;
}

/** The runtime's own invoke URL: what a consumer outside JupyterLab calls. */
export function invokeUrl(runtimeUrl: string, name: string): string {
  return `${runtimeUrl.replace(/\/+$/, '')}/api/products/${encodeURIComponent(name)}/invoke`;
}

/**
 * A curl command that invokes the product with its defaults. The token is
 * referenced as `$NBMESH_TOKEN`, never spelled out: the browser does not know it.
 */
export function curlCommand(
  runtimeUrl: string,
  name: string,
  parameters: Record<string, IParameterSpec>,
  tokenRequired: boolean
): string {
  const body = JSON.stringify(defaultsOf(parameters)).replace(/'/g, "'\\''");
  const parts = [
    `curl -X POST ${invokeUrl(runtimeUrl, name)}`,
    "-H 'Content-Type: application/json'"
  ];
  if (tokenRequired) {
    parts.push('-H "Authorization: Bearer $NBMESH_TOKEN"');
  }
  parts.push(`-d '${body}'`);
  return parts.join(' ');
}
