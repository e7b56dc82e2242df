"""Starts an ipykernel with the limits the runtime asked for, set inside the kernel's own process.

Usage: ``python -m kernel_runtime.kernel_launcher [--memory BYTES] -f CONNECTION_FILE``.
"""

from __future__ import annotations

import resource
import sys


def main(argv: list[str]) -> None:
    if argv[:1] == ["--memory"]:
        limit = int(argv[1])
        # RLIMIT_AS caps the address space: an allocation past it raises MemoryError in the
        # product's code (or kills only this process), never the runtime.
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        argv = argv[2:]
    _become_subreaper()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=argv)


def _become_subreaper() -> None:
    """Orphans of the product's processes re-parent to the kernel, so the runner can find and stop them."""
    if sys.platform != "linux":
        return
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
