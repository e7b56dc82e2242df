import type { IProduct, IRun } from '../api';
import { countLabel, formatDate, isActive, matches, runTitle, shownCount } from '../panel';

function product(name: string, owner = '', description = ''): IProduct {
  return { name, owner, description, title: '', version: 1 } as unknown as IProduct;
}

function run(status: IRun['status'], started_at: string | null = '2026-11-25T19:08:11Z'): IRun {
  return {
    run_id: '0123456789abcdef0123456789abcdef',
    product: 'sales',
    version: 3,
    status,
    created_at: '2026-11-25T19:08:00Z',
    started_at
  } as unknown as IRun;
}

const catalog = [
  product('sales-summary', 'finance'),
  product('weather', 'climate', 'daily sales of umbrellas'),
  product('orders', 'ops')
];

describe('the count follows the search', () => {
  it('counts the products the search shows', () => {
    expect(shownCount(catalog, '')).toBe(3);
    expect(shownCount(catalog, 'sales')).toBe(2);
    expect(shownCount(catalog, '  OPS ')).toBe(1);
    expect(shownCount(catalog, 'nothing like it')).toBe(0);
    expect(catalog.filter(p => matches(p, 'climate')).map(p => p.name)).toEqual(['weather']);
  });

  it('says how many of how many match, and just the total without a search', () => {
    expect(countLabel(3, 3, '', 'http://rt')).toBe('3 products at http://rt');
    expect(countLabel(1, 1, '', 'http://rt')).toBe('1 product at http://rt');
    expect(countLabel(3, 2, ' sales ', 'http://rt')).toBe('2 of 3 products match "sales" at http://rt');
    expect(countLabel(3, 0, 'zzz', 'http://rt')).toBe('0 of 3 products match "zzz" at http://rt');
    // A search every product matches changes nothing.
    expect(countLabel(3, 3, 's', 'http://rt')).toBe('3 products at http://rt');
  });
});

describe('dates', () => {
  it('are all in one locale format, never ISO', () => {
    expect(formatDate('2026-11-25T19:08:11Z', 'en-GB', 'UTC')).toBe('25 Nov 2026, 19:08');
    expect(formatDate('2026-11-25T19:08:11.123456+00:00', 'en-GB', 'UTC')).toBe('25 Nov 2026, 19:08');
    expect(formatDate('2026-11-25T19:08:11Z', 'en-GB', 'Asia/Tokyo')).toBe('26 Nov 2026, 04:08');
  });

  it('show text that is not a date as it is, and nothing for none', () => {
    expect(formatDate('yesterday', 'en-GB', 'UTC')).toBe('yesterday');
    expect(formatDate(null)).toBe('');
    expect(formatDate(undefined)).toBe('');
  });
});

describe('runs', () => {
  it('are polled while queued or running only', () => {
    expect(isActive(run('queued'))).toBe(true);
    expect(isActive(run('running'))).toBe(true);
    for (const status of ['succeeded', 'failed', 'timed_out'] as const) {
      expect(isActive(run(status))).toBe(false);
    }
  });

  it('name their notebook tab product@version · time', () => {
    expect(runTitle(run('succeeded'), 'en-GB', 'UTC')).toBe('sales@3 · 25 Nov 2026, 19:08');
    // Not started yet: the time it was asked for.
    expect(runTitle(run('queued', null), 'en-GB', 'UTC')).toBe('sales@3 · 25 Nov 2026, 19:08');
  });
});
