import { fromRaw, IRaw, toRaw, triggerFromRow, triggerRows } from '../settings';
import {
  cronProblem,
  nameFromPath,
  nameProblem,
  parseJson,
  timeoutProblem,
  timezoneProblem
} from '../validate';

function raw(fields: Partial<IRaw> = {}): IRaw {
  return {
    name: '',
    title: '',
    description: '',
    owner: '',
    timeout: '',
    triggers: [],
    output_schema: '',
    ...fields
  };
}

describe('validation', () => {
  it('checks a product name as the contract does', () => {
    for (const good of ['sales', 'a', '9-lives', 'a'.repeat(63)]) {
      expect(nameProblem(good)).toBeNull();
    }
    for (const bad of ['', 'Sales', 'sales report', '-sales', 'a'.repeat(64), 'café', 'sales\n', 'ü']) {
      expect(nameProblem(bad)).toContain(`Invalid product name "${bad}"`);
    }
  });

  it('derives the name from the file as `nbmesh publish` does', () => {
    expect(nameFromPath('reports/Sales_Summary.ipynb')).toBe('sales-summary');
    expect(nameFromPath('My Report.ipynb')).toBe('my report');
  });

  it('checks a timeout', () => {
    expect(timeoutProblem('30')).toBeNull();
    expect(timeoutProblem('0.5')).toBeNull();
    expect(timeoutProblem('86400')).toBeNull();
    for (const bad of ['0', '86401', '-1', 'soon', 'NaN', 'Infinity', '1e3', '١٢']) {
      expect(timeoutProblem(bad)).toContain(`not "${bad}"`);
    }
  });

  it('checks cron expressions field by field', () => {
    for (const good of ['0 * * * *', '*/15 6-18 * * mon-fri', '0 6 1,15 jan,jul 0', '30 2 * * 7', '0 0 L * *', '0 0 * * 1#2']) {
      expect(cronProblem(good)).toBeNull();
    }
    expect(cronProblem('61 * * * *')).toBe('Schedule "61 * * * *": the minute 61 is out of range 0-59.');
    expect(cronProblem('0 24 * * *')).toBe('Schedule "0 24 * * *": the hour 24 is out of range 0-23.');
    expect(cronProblem('0 0 0 * *')).toBe('Schedule "0 0 0 * *": the day of month 0 is out of range 1-31.');
    expect(cronProblem('0 0 * 13 *')).toBe('Schedule "0 0 * 13 *": the month 13 is out of range 1-12.');
    expect(cronProblem('0 0 * * funday')).toBe('Schedule "0 0 * * funday": the day of week "funday" is not a number or a name.');
    expect(cronProblem('*/0 * * * *')).toBe('Schedule "*/0 * * * *": the minute step in "*/0" must be at least 1.');
    expect(cronProblem('0 * * *')).toContain('must have five fields');
    expect(cronProblem('0 * * * * *')).toContain('not 6');
  });

  it('checks time zones and JSON', () => {
    expect(timezoneProblem('Europe/Paris')).toBeNull();
    expect(timezoneProblem('Mars/Olympus')).toContain('Unknown time zone "Mars/Olympus"');
    expect(parseJson('Output schema', '{"type": "object"}')).toEqual({ value: { type: 'object' } });
    expect(parseJson('Output schema', '{"type": ').problem).toMatch(/^Output schema is not valid JSON: /);
  });
});

describe('the settings form', () => {
  const metadata = {
    name: 'sales',
    timeout: 30,
    files: ['data/x.csv'],
    triggers: [
      { schedule: '0 6 * * *', timezone: 'Europe/Paris', parameters: { region: 'EU' } },
      { event: 'orders.updated', note: 'kept' }
    ]
  };

  it('shows triggers as rows and saves them back unchanged, unknown keys kept', () => {
    const form = toRaw(metadata);
    expect(form.timeout).toBe('30');
    expect(form.triggers).toEqual([
      { kind: 'schedule', value: '0 6 * * *', timezone: 'Europe/Paris', parameters: '{"region":"EU"}', extra: {} },
      { kind: 'event', value: 'orders.updated', timezone: '', parameters: '', extra: { note: 'kept' } }
    ]);
    expect(fromRaw(form, metadata, 'file-name')).toEqual({ metadata, problems: [] });
    expect(triggerRows('not a list')).toEqual([]);
  });

  it('lists every problem at once on Save, and saves nothing then', () => {
    const result = fromRaw(
      raw({
        name: 'Sales Report',
        timeout: 'soon',
        triggers: [
          { kind: 'schedule', value: '61 * * * *', timezone: 'Nowhere/Land', parameters: '[1]', extra: {} },
          { kind: 'event', value: ' ', timezone: '', parameters: '{', extra: {} }
        ],
        output_schema: '{"type":'
      }),
      {},
      'file-name'
    );
    expect(result.metadata).toBeUndefined();
    expect(result.problems).toEqual([
      expect.stringContaining('Invalid product name "Sales Report"'),
      expect.stringContaining('Timeout must be a number of seconds'),
      'Trigger 1: Schedule "61 * * * *": the minute 61 is out of range 0-59.',
      expect.stringContaining('Trigger 1: Unknown time zone "Nowhere/Land"'),
      'Trigger 1: the parameters must be a JSON object like {"region": "EU"}.',
      'Trigger 2: an event trigger needs a topic, e.g. "orders.updated".',
      expect.stringMatching(/^Trigger 2: the parameters is not valid JSON/),
      expect.stringMatching(/^Output schema is not valid JSON/)
    ]);
  });

  it('takes the name from the file when the field is empty, and says when that name is invalid', () => {
    expect(fromRaw(raw({ owner: 'team' }), { name: 'old' }, 'sales')).toEqual({
      metadata: { owner: 'team' },
      problems: []
    });
    expect(fromRaw(raw(), {}, 'my report').problems).toEqual([
      expect.stringMatching(/^Invalid product name "my report".* It comes from the file name: set a name\.$/)
    ]);
  });

  it('builds each kind of trigger', () => {
    expect(
      triggerFromRow({ kind: 'schedule', value: ' 0 6 * * 1-5 ', timezone: '', parameters: '', extra: {} }, 'T')
    ).toEqual({ trigger: { schedule: '0 6 * * 1-5' }, problems: [] });
    expect(
      triggerFromRow({ kind: 'event', value: 'a.b', timezone: 'UTC', parameters: '{"x": 1}', extra: {} }, 'T')
    ).toEqual({ trigger: { event: 'a.b', parameters: { x: 1 } }, problems: [] });
    expect(triggerFromRow({ kind: 'schedule', value: '', timezone: '', parameters: '', extra: {} }, 'T').problems).toEqual([
      'T: a schedule needs a cron expression, e.g. "0 6 * * *".'
    ]);
  });
});
