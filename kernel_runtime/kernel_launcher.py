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
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
