"""The sandbox each kernel runs in, and the environment it gets.

With ``bubblewrap`` (Debian's ``bwrap``), a kernel runs in its own PID, IPC and mount namespaces
on a root filesystem made only of what a kernel needs: the system (``/usr``, ``/etc``, the
``/bin``/``/lib`` links) and the Python installation read-only, the ``kernel_runtime`` package
read-only at a fixed path, a private ``/tmp`` capped at ``settings.pool.kernel_tmp`` (its ``HOME`` lives there) and its
own IPC folder (connection file and sockets). The store, the runtime's working directory and
other kernels' folders are simply not there. The launcher then drops from root to
``nobody`` (see :mod:`kernel_runtime.kernels.launcher`), so nothing readable only by root
(``/etc/shadow``, say) is readable either.

In both modes the environment is built from scratch: product code sees none of the runtime's
variables (its token, store credentials) except those the operator names with ``--kernel-env``.

:func:`resolve` (``--sandbox auto``) picks bubblewrap when ``bwrap`` is installed and a probe kernel command runs
in it, else ``none`` with a loud warning; ``/healthz`` reports what is in force.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

from ..errors import KernelError
from ..settings import PoolSettings

log = logging.getLogger("nbmesh.sandbox")

MODES = ("auto", "bwrap", "none")


class Containment(TypedDict):
    """What the kernels' containment guarantees ("not started" until the pool has resolved it)."""

    sandbox: Literal["bubblewrap", "none", "not started"]
    one_product_version_per_kernel: NotRequired[bool]
    environment: NotRequired[list[str]]  # the names of the variables passed to kernels
    warning: NotRequired[str]
    user: NotRequired[str]
    namespaces: NotRequired[list[str]]
    filesystem: NotRequired[str]
    processes: NotRequired[str]

PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)  # the kernel_runtime package, not kernels/
# Where the package is bound inside the sandbox; PYTHONPATH points here, so the kernel imports the
# runtime's own code without seeing the folder it was installed from (a checkout holds the store).
PACKAGE_MOUNT = "/opt/nbmesh"
KERNEL_UID = KERNEL_GID = 65534  # nobody: kernels of a root runtime drop to it
HOME = "/tmp/home"
WORKDIR = "/opt/nbmesh-work"
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def kernel_env(names: tuple[str, ...] | list[str], source: dict[str, str] | None = None) -> dict[str, str]:
    """The ``--kernel-env`` variables, with their values taken from the runtime's environment."""
    source = os.environ if source is None else source
    passed = {}
    for name in names:
        if name in source:
            passed[name] = source[name]
        else:
            log.warning("--kernel-env %s: the runtime has no such variable; kernels do not get it", name)
    return passed


@dataclass(frozen=True)
class Sandbox:
    """How kernels are started: the command around the launcher, and their environment."""

    kind: str  # "bubblewrap" or "none"
    passed_env: dict[str, str] = field(default_factory=dict)
    tmp_size: int = PoolSettings.kernel_tmp  # bytes of the kernel's private /tmp (bubblewrap only)

    @property
    def drops_to_nobody(self) -> bool:
        return self.kind == "bubblewrap" and os.geteuid() == 0

    def env(self) -> dict[str, str]:
        """The kernel's whole environment."""
        python_bin = os.path.dirname(sys.executable)
        env = {"PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        if self.kind == "bubblewrap":
            # The kernel's parent in its PID namespace is bwrap's init (PID 1), which dies with the
            # runtime: ipykernel needs no parent poller, and prints no console banner, for PID 1.
            env.update(HOME=HOME, PYTHONPATH=PACKAGE_MOUNT, JPY_PARENT_PID="1")
        else:
            env.update(HOME=os.path.expanduser("~"), PYTHONPATH=str(Path(PACKAGE_DIR).parent))
        return {**env, **self.passed_env}

    def command(self, argv: list[str], ipc_dir: str, workdir: str | None = None) -> list[str]:
        """``argv`` (the kernel launcher) wrapped in the sandbox; ``ipc_dir`` is bound read-write,
        ``workdir`` (the kernel's product files) read-only as its working directory."""
        if self.kind == "none":
            return list(argv)
        return [*bwrap_args(ipc_dir, self.env(), workdir, self.tmp_size), "--", *argv]

    def popen_cwd(self, workdir: str | None) -> str | None:
        """The working directory of the process the pool starts (bwrap sets the kernel's own)."""
        return workdir if self.kind == "none" else None

    def popen_env(self) -> dict[str, str]:
        """The environment of the process the pool starts (bwrap, or the kernel itself)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")} if self.kind == "bubblewrap" else self.env()

    def describe(self) -> Containment:
        """What this containment guarantees, for ``/healthz``."""
        common = {
            "one_product_version_per_kernel": True,
            "environment": sorted(self.passed_env),  # names only: --kernel-env values can be secrets
        }
        if self.kind == "none":
            return {
                "sandbox": "none",
                **common,
                "warning": "bubblewrap is not in force: product code runs with the runtime's user and sees its "
                "files (the store and other products' files included) and processes; only the environment is cleared.",
            }
        return {
            "sandbox": "bubblewrap",
            **common,
            "user": "nobody" if self.drops_to_nobody else "the runtime's user",
            "namespaces": ["mount", "pid", "ipc"],
            "filesystem": "system and Python read-only, its product's files read-only as its working directory, "
            "a private /tmp; not the store, the runtime's working directory or other kernels' folders",
            "processes": "sees only its own; cannot signal the runtime or other kernels",
        }


def bwrap_args(ipc_dir: str, env: dict[str, str], workdir: str | None = None, tmp_size: int = PoolSettings.kernel_tmp) -> list[str]:
    """The bubblewrap options for one kernel (everything before ``--``)."""
    args = [
        "bwrap",
        "--die-with-parent",  # the runtime dies (even SIGKILL): its kernels die with it
        "--new-session",  # no controlling terminal to push input into (TIOCSTI)
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-cgroup-try",
        "--clearenv",
    ]
    for name, value in env.items():
        args += ["--setenv", name, value]
    made = {"/"}

    def mount(*option: str) -> None:
        # bwrap creates a mount point's missing parents as root-only (0700): make them 0755 first,
        # or the kernel, once it is nobody, could not reach what is bound below them.
        dest = option[-1]
        parents = [str(p) for p in reversed(Path(dest).parents)]
        for parent in parents:
            if parent not in made:
                args.extend(["--perms", "0755", "--dir", parent])
                made.add(parent)
        args.extend(option)
        made.add(dest)

    # The kernel's own /proc, /dev and private /tmp first: what is bound after them may live below
    # /tmp (a checkout or venv in /tmp) and must show through the tmpfs, not be hidden by it.
    mount("--proc", "/proc")
    mount("--dev", "/dev")
    mount("--perms", "1777", "--tmpfs", "/dev/shm")
    mount("--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp")
    mount("--ro-bind", "/usr", "/usr")
    mount("--ro-bind", "/etc", "/etc")
    for path in SYSTEM_LINKS:
        if os.path.islink(path):
            mount("--symlink", os.readlink(path), path)
        elif os.path.isdir(path):
            mount("--ro-bind", path, path)
    for prefix in python_prefixes():
        mount("--ro-bind", prefix, prefix)
    mount("--ro-bind", PACKAGE_DIR, f"{PACKAGE_MOUNT}/kernel_runtime")
    mount("--bind", ipc_dir, ipc_dir)
    if workdir is not None:
        mount("--ro-bind", workdir, WORKDIR)
    args += ["--chdir", WORKDIR if workdir is not None else "/tmp"]
    return args


def python_prefixes() -> list[str]:
    """The Python installation(s) the kernel runs from, outside /usr (which is bound anyway)."""
    found: list[str] = []
    for prefix in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        prefix = os.path.realpath(prefix)
        if prefix == "/usr" or prefix.startswith("/usr/") or any(prefix == p or prefix.startswith(p + "/") for p in found):
            continue
        found = [p for p in found if not p.startswith(prefix + "/")] + [prefix]
    return found


def resolve(settings: PoolSettings, passed_env: dict[str, str]) -> Sandbox:
    """The sandbox for ``settings.sandbox`` (``--sandbox``); ``bwrap`` that does not work is a :class:`KernelError`."""
    mode = settings.sandbox
    if mode not in MODES:
        raise KernelError(f"--sandbox must be one of {', '.join(MODES)}, got {mode!r}.")
    contained = Sandbox("bubblewrap", passed_env, tmp_size=settings.kernel_tmp)
    if mode == "none":
        log.warning("--sandbox none: product code runs unconfined, with the runtime's user and files.")
        return replace(contained, kind="none")
    problem = _probe(contained, settings.start_timeout)
    if problem is None:
        return contained
    if mode == "bwrap":
        raise KernelError(f"--sandbox bwrap: bubblewrap does not work here: {problem}")
    log.warning(
        "WARNING: kernels run WITHOUT a sandbox (%s). Product code can read the store and the runtime's "
        "files and see its processes. Install bubblewrap (apt-get install bubblewrap) to contain it.",
        problem,
    )
    return replace(contained, kind="none")


def _probe(sandbox: Sandbox, timeout: float) -> str | None:
    """Why the sandbox cannot start a kernel's interpreter, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed"
    with tempfile.TemporaryDirectory(prefix="nbmesh-probe-") as probe_dir:
        cmd = sandbox.command([sys.executable, "-c", "import kernel_runtime.kernels.runner"], probe_dir)
        try:
            done = subprocess.run(cmd, env=sandbox.popen_env(), capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the probe failed: {exc}"
    if done.returncode != 0:
        return f"the probe exited with {done.returncode}: {done.stderr.strip()[-500:]}"
    return None
