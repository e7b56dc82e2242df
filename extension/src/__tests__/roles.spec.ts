import { CodeCellModel } from '@jupyterlab/cells';

import { refusalToast } from '../publish';
import { hasRole, rolesOf, setRole } from '../roles';

describe('cell roles are tags', () => {
  it('sets and clears one role, keeping other tags and their order', () => {
    const cell = new CodeCellModel({});
    cell.setMetadata('tags', ['keep', 'output']);
    expect(rolesOf(cell)).toEqual(['output']);
    setRole(cell, 'parameters', true);
    expect(cell.getMetadata('tags')).toEqual(['keep', 'output', 'parameters']);
    expect(rolesOf(cell)).toEqual(['parameters', 'output']);
    setRole(cell, 'parameters', true);
    expect(cell.getMetadata('tags')).toEqual(['keep', 'output', 'parameters']);
    setRole(cell, 'output', false);
    expect(hasRole(cell, 'output')).toBe(false);
    expect(cell.getMetadata('tags')).toEqual(['keep', 'parameters']);
  });

  it('removes the tags key when the last tag goes', () => {
    const cell = new CodeCellModel({});
    expect(rolesOf(cell)).toEqual([]);
    setRole(cell, 'setup', true);
    expect(cell.getMetadata('tags')).toEqual(['setup']);
    setRole(cell, 'setup', false);
    expect(cell.getMetadata('tags')).toBeUndefined();
  });
});

describe('the refusal toast', () => {
  it('is short enough never to be cut, however long the name', () => {
    expect(refusalToast('sales', 2)).toBe('sales was not published: 2 problems (nothing was stored).');
    expect(refusalToast('sales', 1)).toBe('sales was not published: 1 problem (nothing was stored).');
    expect(refusalToast('sales', 0)).toBe('sales was not published (nothing was stored).');
    const long = refusalToast('A Very Long Product Name That Nobody Could Publish Anyway', 3);
    expect(long).toBe('A Very Long Product Name That Nobody Co… was not published: 3 problems (nothing was stored).');
    expect(long.length).toBeLessThanOrEqual(140);
  });
});
