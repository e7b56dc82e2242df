/**
 * Cell roles are plain cell tags (`parameters`, `setup`, `output`), so a
 * notebook marked here publishes the same way from the command line. This
 * module toggles them and keeps a badge on every cell that has one.
 */
import type { ICellModel } from '@jupyterlab/cells';
import type { Notebook } from '@jupyterlab/notebook';
import type { IDisposable } from '@lumino/disposable';

export const ROLES = ['parameters', 'setup', 'output'] as const;
export type Role = (typeof ROLES)[number];

export function rolesOf(model: ICellModel): Role[] {
  const tags = model.getMetadata('tags');
  if (!Array.isArray(tags)) {
    return [];
  }
  return ROLES.filter(role => tags.includes(role));
}

export function hasRole(model: ICellModel, role: Role): boolean {
  return rolesOf(model).includes(role);
}

/** Add the role's tag, or remove it when `on` is false; other tags are kept. */
export function setRole(model: ICellModel, role: Role, on: boolean): void {
  const current = model.getMetadata('tags');
  const tags: string[] = Array.isArray(current) ? [...current] : [];
  const present = tags.includes(role);
  if (on && !present) {
    tags.push(role);
  } else if (!on && present) {
    tags.splice(tags.indexOf(role), 1);
  } else {
    return;
  }
  if (tags.length) {
    model.setMetadata('tags', tags);
  } else {
    model.deleteMetadata('tags');
  }
}

const BADGES_CLASS = 'nbmesh-CellBadges';

/** Keeps one badge per role on each cell of a notebook, following tag edits from anywhere. */
export class RoleBadges implements IDisposable {
  private _frame = 0;
  private _disposed = false;

  constructor(private readonly _notebook: Notebook) {
    _notebook.modelChanged.connect(this._watchModel, this);
    this._watchModel();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    cancelAnimationFrame(this._frame);
    this._notebook.modelChanged.disconnect(this._watchModel, this);
  }

  /** Draw every badge now. */
  sync(): void {
    const model = this._notebook.model;
    if (this._disposed || !model) {
      return;
    }
    for (const cellModel of model.cells) {
      cellModel.metadataChanged.connect(this._schedule, this);
    }
    for (const cell of this._notebook.widgets) {
      const roles = rolesOf(cell.model);
      let badges = cell.node.querySelector<HTMLElement>(`:scope > .${BADGES_CLASS}`);
      for (const role of ROLES) {
        cell.node.classList.toggle(`nbmesh-role-${role}`, roles.includes(role));
      }
      if (!roles.length) {
        badges?.remove();
        continue;
      }
      if (!badges) {
        badges = document.createElement('div');
        badges.className = BADGES_CLASS;
        cell.node.appendChild(badges);
      }
      const text = roles.join(' ');
      if (badges.dataset.roles !== text) {
        badges.dataset.roles = text;
        badges.replaceChildren(
          ...roles.map(role => {
            const badge = document.createElement('span');
            badge.className = `nbmesh-CellBadge nbmesh-CellBadge-${role}`;
            badge.textContent = role;
            badge.title = `This cell is the product's ${role} cell (tag "${role}")`;
            return badge;
          })
        );
      }
    }
  }

  private _watchModel(): void {
    this._notebook.model?.cells.changed.connect(this._schedule, this);
    this._schedule();
  }

  // Cell widgets are created after the model's change signal, so draw on the next frame.
  private _schedule(): void {
    if (this._frame || this._disposed) {
      return;
    }
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this.sync();
    });
  }
}
