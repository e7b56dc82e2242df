"""kernel_runtime.kernels.sandbox, the bubblewrap command line: what a kernel's filesystem is made of, and in which order."""

from __future__ import annotations

from kernel_runtime.kernels.sandbox import bwrap_args, python_prefixes


def _targets(args: list[str], option: str) -> list[int]:
    return [i for i, a in enumerate(args) if a == option]


def test_the_private_tmp_is_mounted_before_the_binds_that_may_live_below_it():
    # A checkout or venv in /tmp (CI clones there) must show through the kernel's private /tmp.
    args = bwrap_args("/tmp/nbmesh-ipc-x/kernel-1", {"PATH": "/usr/bin"})
    tmpfs = args.index("/tmp", args.index("--tmpfs"))
    binds = _targets(args, "--ro-bind") + _targets(args, "--bind")
    assert binds and all(i > tmpfs for i in binds), args


def test_the_store_and_the_working_directory_are_not_bound(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = bwrap_args(str(tmp_path / "ipc"), {})
    sources = {args[i + 1] for i in _targets(args, "--ro-bind") + _targets(args, "--bind")}
    assert str(tmp_path) not in sources
    assert set(python_prefixes()) <= sources
