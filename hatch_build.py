"""Build hook run before hatch-jupyter-builder's: without Node.js, stop in one clear line.

Installing from source builds the JupyterLab extension (extension/) with jlpm, which needs Node.js.
Without it, the builder fails deep in a subprocess with a long traceback; this hook says what is
missing and what to do instead, and only when a build is actually needed (the same staleness rule
as the builder, and its skip switches).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MESSAGE = (
    "error: Node.js is needed to install nbmesh from source: the JupyterLab extension in extension/ is built "
    "at install. Install Node.js (e.g. `apt-get install nodejs`) and run pip again."
)


class NodeCheck(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or os.getenv("SKIP_JUPYTER_BUILDER") or os.getenv("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1":
            return
        from hatch_jupyter_builder.utils import is_stale

        root = Path(self.root)
        if is_stale(root / "kernel_runtime" / "labextension", root / "extension" / "src") and shutil.which("node") is None:
            print(MESSAGE, file=sys.stderr)
            raise SystemExit(1)  # no traceback: the line above is the whole story
