"""Starts an ipykernel with the limits the runtime asked for, set inside the kernel's own process.

Usage: ``python -m kernel_runtime.kernels.launcher [--memory BYTES] [--user UID:GID] -f CONNECTION_FILE``.

``--user`` is given when a root runtime starts the kernel in the sandbox: the launcher (still
root, before any product code) hands the kernel's IPC folder and ``HOME`` to that user, then drops
to it for good, with no way back (``no_new_privs``: setuid programs in ``/usr`` do not help).
"""

from __future__ import annotations

import os
import resource
import sys


def main(argv: list[str]) -> None:
    user: tuple[int, int] | None = None
    while argv[:1] in (["--memory"], ["--user"]):
        flag, value, argv = argv[0], argv[1], argv[2:]
        if flag == "--memory":
            limit = int(value)
            # RLIMIT_AS caps the address space: an allocation past it raises MemoryError in the
            # product's code (or kills only this process), never the runtime.
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        else:
            uid, gid = (int(part) for part in value.split(":"))
            user = (uid, gid)
    _become_subreaper()
    if user is not None:
        _drop_to(user, argv[argv.index("-f") + 1])
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=argv)


def _become_subreaper() -> None:
    """Orphans of the product's processes re-parent to the kernel, so the runner can find and stop them."""
    if sys.platform != "linux":
        return
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _drop_to(user: tuple[int, int], connection_file: str) -> None:
    import ctypes

    uid, gid = user
    ipc_dir = os.path.dirname(connection_file)
    for path in (ipc_dir, connection_file):
        os.chown(path, uid, gid)  # the kernel reads its connection file and creates its sockets here
    home = os.environ["HOME"]
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chown(home, uid, gid)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
    # Changing user makes the process non-dumpable, which leaves /proc/self owned by root; it holds
    # nothing of root's any more, so give it back.
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    if prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


if __name__ == "__main__":
    main(sys.argv[1:])
