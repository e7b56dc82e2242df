/** Icons for the side panel and the cell role buttons. */
import { LabIcon } from '@jupyterlab/ui-components';

const letter = (text: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">` +
  `<rect class="jp-icon3" x="1.5" y="1.5" width="13" height="13" rx="3" fill="none" stroke="#616161"/>` +
  `<text class="jp-icon3" x="8" y="11.5" font-size="9" font-family="sans-serif" font-weight="bold" text-anchor="middle" fill="#616161">${text}</text></svg>`;

export const parametersIcon = new LabIcon({ name: 'nbmesh:parameters', svgstr: letter('P') });
export const setupIcon = new LabIcon({ name: 'nbmesh:setup', svgstr: letter('S') });
export const outputIcon = new LabIcon({ name: 'nbmesh:output', svgstr: letter('O') });

export const productsIcon = new LabIcon({
  name: 'nbmesh:products',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<circle cx="5" cy="5" r="3"/><circle cx="19" cy="5" r="3"/><circle cx="12" cy="19" r="3"/>' +
    '<path d="M5 5 L19 5 L12 19 Z" fill="none" stroke="#616161" stroke-width="1.6"/></g></svg>'
});

export const publishIcon = new LabIcon({
  name: 'nbmesh:publish',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M5 20h14v-2H5v2zm0-10h4v6h6v-6h4l-7-7-7 7z"/></svg>'
});
