"""nbmesh's runtime: publish Jupyter notebooks as data products and run them on warm kernels.

Importing this package stays cheap because every kernel imports
:mod:`kernel_runtime.kernels.runner` through it; the client is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["Client", "RunFailed", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from .client import Client

        return Client
    if name == "RunFailed":
        from .errors import RunFailed

        return RunFailed
    raise AttributeError(f"module 'kernel_runtime' has no attribute {name!r}")
