/** Icons for the side panel and the cell role buttons. */
import { LabIcon } from '@jupyterlab/ui-components';

import type { Role } from './roles';

/*
 * A role icon is its letter in a rounded box, both in the role's colour, so the
 * three differ at a glance (letter and colour) and follow the theme: each
 * element carries the `jp-icon-*` class of its colour with a matching paint
 * attribute, since JupyterLab recolours `.jp-icon-x[fill]` and `[stroke]`. The
 * box has no `fill` attribute (a `fill="none"` would be recoloured into a solid
 * square); `fill-opacity` keeps it clear until the button is pressed, when
 * style/base.css fills the box and turns the letter to the background colour.
 */
const ROLE_COLOURS: Record<Role, { css: string; hex: string }> = {
  parameters: { css: 'jp-icon-brand1', hex: '#1976d2' },
  setup: { css: 'jp-icon-warn1', hex: '#f57c00' },
  output: { css: 'jp-icon-contrast1', hex: '#43a047' }
};

function roleSvg(role: Role): string {
  const { css, hex } = ROLE_COLOURS[role];
  const letter = role[0].toUpperCase();
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16" class="nbmesh-RoleIcon nbmesh-RoleIcon-${role}">` +
    `<rect class="nbmesh-RoleIcon-box ${css}" x="1" y="1" width="14" height="14" rx="3" stroke="${hex}" stroke-width="1.5" fill-opacity="0"/>` +
    `<text class="nbmesh-RoleIcon-letter ${css}" x="8" y="12" font-size="10.5" font-family="sans-serif" font-weight="bold" text-anchor="middle" fill="${hex}">${letter}</text></svg>`
  );
}

export const parametersIcon = new LabIcon({ name: 'nbmesh:parameters', svgstr: roleSvg('parameters') });
export const setupIcon = new LabIcon({ name: 'nbmesh:setup', svgstr: roleSvg('setup') });
export const outputIcon = new LabIcon({ name: 'nbmesh:output', svgstr: roleSvg('output') });

export const productsIcon = new LabIcon({
  name: 'nbmesh:products',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<circle cx="5" cy="5" r="3"/><circle cx="19" cy="5" r="3"/><circle cx="12" cy="19" r="3"/></g>' +
    '<path class="jp-icon3" d="M5 5 L19 5 L12 19 Z" fill-opacity="0" stroke="#616161" stroke-width="1.6"/></svg>'
});

export const publishIcon = new LabIcon({
  name: 'nbmesh:publish',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M5 20h14v-2H5v2zm0-10h4v6h6v-6h4l-7-7-7 7z"/></svg>'
});
