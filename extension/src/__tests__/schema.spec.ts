import { buildParameterForm, curlCommand, defaultsOf, invokeUrl } from '../schema';
import type { IParameterSpec } from '../api';

const parameters: Record<string, IParameterSpec> = {
  region: { type: 'str', default: 'EU', help: 'sales region' },
  limit: { type: 'int', default: 10 },
  ratio: { type: 'float', default: 0.5 },
  dry_run: { type: 'bool', default: true },
  regions: { type: 'list', default: ['EU', 'US'] },
  options: { type: 'dict', default: { a: 1 } }
};

/** A parameter the runtime's document does not describe (a newer runtime's type, no default): the form still copes. */
function offSpec(spec: Record<string, unknown>): IParameterSpec {
  return spec as unknown as IParameterSpec;
}

function set(form: ReturnType<typeof buildParameterForm>, name: string, value: string) {
  const input = form.input(name)!;
  input.value = value;
}

describe('buildParameterForm', () => {
  it('builds one input per parameter type, filled with the defaults', () => {
    const form = buildParameterForm(parameters);
    const input = (name: string) => form.input(name) as HTMLInputElement;
    expect(input('region').type).toBe('text');
    expect(input('limit').type).toBe('number');
    expect(input('limit').step).toBe('1');
    expect(input('ratio').step).toBe('any');
    expect(input('dry_run').type).toBe('checkbox');
    expect(input('dry_run').checked).toBe(true);
    expect(form.input('regions')!.tagName).toBe('TEXTAREA');
    expect(form.input('options')!.tagName).toBe('TEXTAREA');
    expect(form.node.textContent).toContain('sales region');
    expect(form.read()).toEqual({
      values: {
        region: 'EU',
        limit: 10,
        ratio: 0.5,
        dry_run: true,
        regions: ['EU', 'US'],
        options: { a: 1 }
      },
      errors: []
    });
  });

  it('reads what the user typed as JSON values', () => {
    const form = buildParameterForm(parameters);
    set(form, 'region', 'US');
    set(form, 'limit', '-3');
    set(form, 'ratio', '2');
    (form.input('dry_run') as HTMLInputElement).checked = false;
    set(form, 'regions', '["APAC"]');
    set(form, 'options', '{"b": [true, null]}');
    expect(form.read()).toEqual({
      values: {
        region: 'US',
        limit: -3,
        ratio: 2,
        dry_run: false,
        regions: ['APAC'],
        options: { b: [true, null] }
      },
      errors: []
    });
  });

  it('leaves an emptied number or JSON field out so the default applies, but keeps an empty string', () => {
    const form = buildParameterForm(parameters);
    set(form, 'region', '');
    set(form, 'limit', '');
    set(form, 'regions', '  ');
    expect(form.read().values).toEqual({
      region: '',
      ratio: 0.5,
      dry_run: true,
      options: { a: 1 }
    });
  });

  it('names every parameter that cannot be read', () => {
    const form = buildParameterForm(parameters);
    set(form, 'limit', '1.5');
    set(form, 'regions', '{"a": 1}');
    set(form, 'options', '[1]');
    const { errors } = form.read();
    expect(errors).toEqual([
      'limit: expects a whole number, not "1.5"',
      'regions: expects a JSON list, like [1, 2]',
      'options: expects a JSON object, like {"a": 1}'
    ]);
    set(form, 'options', '{oops');
    expect(form.read().errors).toContain('options: is not valid JSON');
  });

  it('says so when a product takes no parameters', () => {
    const form = buildParameterForm({});
    expect(form.node.textContent).toContain('takes no parameters');
    expect(form.read()).toEqual({ values: {}, errors: [] });
  });

  it('edits a parameter without a default, of a type it does not know, as JSON', () => {
    const form = buildParameterForm({ when: offSpec({ type: 'datetime' }), n: offSpec({ type: 'int' }) });
    expect(form.input('when')!.value).toBe('');
    expect(form.input('n')!.value).toBe('');
    set(form, 'when', '"2024-01-01"');
    expect(form.read().values).toEqual({ when: '2024-01-01' });
  });
});

describe('curl and invoke URL', () => {
  it('builds the runtime invoke URL', () => {
    expect(invokeUrl('http://127.0.0.1:8765/', 'sales-summary')).toBe(
      'http://127.0.0.1:8765/api/products/sales-summary/invoke'
    );
  });

  it('sends the defaults and references the token without spelling it out', () => {
    expect(defaultsOf({ a: { type: 'int', default: 1 }, b: offSpec({ type: 'str' }) })).toEqual({ a: 1 });
    expect(curlCommand('http://h:1', 'p', { who: { type: 'str', default: "O'Brien" } }, true)).toBe(
      'curl -X POST http://h:1/api/products/p/invoke ' +
        "-H 'Content-Type: application/json' " +
        '-H "Authorization: Bearer $NBMESH_TOKEN" ' +
        `-d '{"who":"O'\\''Brien"}'`
    );
    expect(curlCommand('http://h:1', 'p', {}, false)).toBe(
      "curl -X POST http://h:1/api/products/p/invoke -H 'Content-Type: application/json' -d '{}'"
    );
  });
});
