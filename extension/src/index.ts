/**
 * nbmesh for JupyterLab: cell roles and their badges, product settings,
 * Publish on the notebook toolbar, and the Data products side panel.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IDocumentManager } from '@jupyterlab/docmanager';
import {
  INotebookTracker,
  INotebookWidgetFactory,
  NotebookPanel,
  NotebookWidgetFactory
} from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { NbmeshApi } from './api';
import { RunsDrive, runNotebookPath } from './drive';
import {
  outputIcon,
  parametersIcon,
  productsIcon,
  publishIcon,
  setupIcon
} from './icons';
import { ProductsPanel, runTitle } from './panel';
import { Publisher } from './publish';
import { hasRole, Role, RoleBadges, setRole } from './roles';
import { editProductSettings } from './settings';

const RUN_VIEWER = 'nbmesh-run-viewer';

namespace CommandIDs {
  export const publish = 'nbmesh:publish';
  export const settings = 'nbmesh:product-settings';
  export const openProducts = 'nbmesh:open-products';
  export const openRun = 'nbmesh:open-run';
  export const role = (role: Role) => `nbmesh:toggle-${role}`;
}

const ROLE_COMMANDS: { role: Role; label: string; icon: typeof parametersIcon }[] = [
  { role: 'parameters', label: 'Parameters Cell', icon: parametersIcon },
  { role: 'setup', label: 'Setup Cell', icon: setupIcon },
  { role: 'output', label: 'Output Cell', icon: outputIcon }
];

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbmesh:plugin',
  description: 'Publish notebooks as nbmesh data products and try them.',
  autoStart: true,
  requires: [
    INotebookTracker,
    IDocumentManager,
    INotebookWidgetFactory,
    IRenderMimeRegistry,
    NotebookPanel.IContentFactory,
    IEditorServices
  ],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    docManager: IDocumentManager,
    notebookFactory: NotebookWidgetFactory.IFactory,
    rendermime: IRenderMimeRegistry,
    contentFactory: NotebookPanel.IContentFactory,
    editorServices: IEditorServices,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell } = app;
    const api = new NbmeshApi(app.serviceManager.serverSettings);

    app.serviceManager.contents.addDrive(new RunsDrive(api));
    // A viewer that never starts a kernel: a run's notebook is a record, not a workspace.
    app.docRegistry.addWidgetFactory(
      new NotebookWidgetFactory({
        name: RUN_VIEWER,
        label: 'Executed run (read-only)',
        fileTypes: ['notebook'],
        modelName: 'notebook',
        preferKernel: false,
        canStartKernel: false,
        readOnly: true,
        rendermime,
        contentFactory,
        mimeTypeService: editorServices.mimeTypeService,
        editorConfig: notebookFactory.editorConfig,
        notebookConfig: notebookFactory.notebookConfig
      })
    );

    const panel = new ProductsPanel({
      api,
      openRunNotebook: run =>
        void commands.execute(CommandIDs.openRun, { run_id: run.run_id, title: runTitle(run) })
    });
    panel.title.icon = productsIcon;
    panel.title.caption = 'Data products';
    shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, 'nbmesh-products');

    const publisher = new Publisher(
      api,
      name => void commands.execute(CommandIDs.openProducts, { product: name })
    );
    publisher.published.connect(() => {
      if (panel.isVisible) {
        void panel.refresh();
      }
    });

    tracker.widgetAdded.connect((_, notebookPanel) => {
      const badges = new RoleBadges(notebookPanel.content);
      notebookPanel.disposed.connect(() => badges.dispose());
    });

    const current = () => tracker.currentWidget;
    const hasNotebook = () => current() !== null;

    for (const { role, label, icon } of ROLE_COMMANDS) {
      commands.addCommand(CommandIDs.role(role), {
        label: args => (args.toolbar ? '' : label),
        caption: `Toggle the "${role}" tag that makes this the product's ${role} cell`,
        icon: args => (args.toolbar ? icon : undefined),
        isEnabled: () => tracker.activeCell !== null,
        isToggleable: true,
        isToggled: () => {
          const cell = tracker.activeCell;
          return cell ? hasRole(cell.model, role) : false;
        },
        execute: () => {
          const notebookPanel = current();
          const active = tracker.activeCell;
          if (!notebookPanel || !active) {
            return;
          }
          const on = !hasRole(active.model, role);
          const notebook = notebookPanel.content;
          for (const cell of notebook.widgets) {
            if (notebook.isSelectedOrActive(cell)) {
              setRole(cell.model, role, on);
            }
          }
          commands.notifyCommandChanged(CommandIDs.role(role));
        }
      });
    }
    tracker.activeCellChanged.connect(() => {
      for (const { role } of ROLE_COMMANDS) {
        commands.notifyCommandChanged(CommandIDs.role(role));
      }
    });

    commands.addCommand(CommandIDs.settings, {
      label: 'Data Product Settings…',
      caption: 'Name, title, description, owner, timeout and triggers of this product',
      isEnabled: hasNotebook,
      execute: async () => {
        const notebookPanel = current();
        if (notebookPanel) {
          await editProductSettings(notebookPanel);
        }
      }
    });

    commands.addCommand(CommandIDs.publish, {
      label: args => (args.toolbar ? 'Publish' : 'Publish as Data Product'),
      caption: 'Publish this notebook as a data product on the nbmesh runtime',
      icon: publishIcon,
      isEnabled: hasNotebook,
      execute: () => {
        const notebookPanel = current();
        return notebookPanel ? publisher.publish(notebookPanel) : null;
      }
    });

    commands.addCommand(CommandIDs.openProducts, {
      label: 'Show Data Products',
      icon: productsIcon,
      execute: async args => {
        shell.activateById(panel.id);
        if (typeof args.product === 'string') {
          await panel.reveal(args.product);
        }
      }
    });

    commands.addCommand(CommandIDs.openRun, {
      label: 'Open Executed Run Notebook',
      execute: args => {
        const runId = String(args.run_id ?? '');
        if (!runId) {
          return;
        }
        const widget = docManager.openOrReveal(runNotebookPath(runId), RUN_VIEWER);
        if (widget) {
          // The tab names the product, version and time; the run id stays in its tooltip.
          widget.addClass('nbmesh-RunViewer');
          const title = typeof args.title === 'string' && args.title ? args.title : runId;
          // The document widget names its tab after the path again as it loads: keep this name.
          const name = () => {
            if (widget.title.label !== title) {
              widget.title.label = title;
            }
          };
          widget.title.caption = `Run ${runId} (read-only)`;
          widget.title.changed.connect(name);
          name();
        }
        return widget;
      }
    });

    // A group of their own at the end of the cell's items (JupyterLab's end at rank 12), between
    // separators, rather than among the notebook's undo, redo and restart items.
    const cellSelector = '.jp-Notebook .jp-Cell';
    const group = [
      ...ROLE_COMMANDS.map(({ role }) => CommandIDs.role(role)),
      CommandIDs.settings
    ];
    app.contextMenu.addItem({ type: 'separator', selector: cellSelector, rank: 15 });
    group.forEach((command, index) =>
      app.contextMenu.addItem({ command, selector: cellSelector, rank: 15 + (index + 1) / 10 })
    );
    app.contextMenu.addItem({ type: 'separator', selector: cellSelector, rank: 16 });

    if (palette) {
      const category = 'Data products';
      for (const command of [
        CommandIDs.publish,
        CommandIDs.settings,
        CommandIDs.openProducts,
        ...ROLE_COMMANDS.map(({ role }) => CommandIDs.role(role))
      ]) {
        palette.addItem({ command, category });
      }
    }
  }
};

export default plugin;
