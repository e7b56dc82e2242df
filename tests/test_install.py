"""Installing from source without Node.js stops with one clear line (hatch_build.py), not a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

# What a build reads: the package, its metadata and the extension's sources (not node_modules).
SOURCES = ["pyproject.toml", "hatch_build.py", "README.md", "install.json", "jupyter-config", "kernel_runtime", "extension/src", "extension/package.json"]


def copy_sources(to: Path) -> Path:
    for name in SOURCES:
        source, target = ROOT / name, to / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "labextension"))
        else:
            shutil.copy2(source, target)
    return to


def build(source: Path, out: Path) -> subprocess.CompletedProcess:
    # PATH holds only this Python's folder: no node there. No build isolation: nothing is downloaded.
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(out), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert shutil.which("node", path=env["PATH"]) is None
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        env=env, capture_output=True, text=True, timeout=300,
    )


def test_a_build_without_node_says_so_in_one_line(tmp_path):
    proc = build(copy_sources(tmp_path / "src"), tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "[1 lines of output]" in output, output
    assert "error: Node.js is needed to install nbmesh from source" in output
    assert "Traceback" not in output
    assert not list(tmp_path.glob("*.whl"))


def test_the_check_stays_out_of_the_way_when_the_extension_is_built(tmp_path):
    source = copy_sources(tmp_path / "src")
    built = source / "kernel_runtime" / "labextension"
    (built / "static").mkdir(parents=True)
    (built / "package.json").write_text("{}")
    (built / "static" / "style.js").write_text("")
    proc = build(source, tmp_path)
    # An up-to-date build needs no Node.js: the wheel is made, the built extension inside it.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith("share/jupyter/labextensions/nbmesh/package.json") for name in names), names
