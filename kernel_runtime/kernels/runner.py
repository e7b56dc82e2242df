"""The half of nbmesh that lives inside each kernel.

The runtime installs a :class:`Runner` when it prepares a kernel for a
product: the runner compiles the product's cells once, runs the ``setup``
cells, and remembers the namespace they made. Each invocation is then a
single ``execute_request`` calling :meth:`Runner.run` with the parameters as
a JSON *string*: values are decoded by ``json.loads`` and bound as data, so
no parameter is ever spliced into code. The runner captures every cell's
outputs for the run's record, turns the output cell's value into JSON,
restores the setup namespace, and leaves its report as the execute reply's
payload (``source: "nbmesh"``): it travels back in the same reply, and costs
less than ``user_expressions``, which would evaluate an expression and run
IPython's display formatters on it after every run (docs/performance.md).

Each report carries the nonce the runtime gave this runner and the number of
the request it answers, so the runtime can tell a report from this runner
apart from one left by code that replaced or broke it. A report also says when
the kernel must not serve another run: the run changed this module (patched
the runner: a few microseconds of identity checks per run), called ``exit()``
(the kernel stops right after this reply), or left threads running, which could
carry this run's data into the next one. Changes those checks miss show up as a
report that is missing or malformed on a later request.

Output capture lives in :mod:`.capture`, result conversion in :mod:`.convert`;
the identity checks cover them too. Only the standard library, IPython and
those siblings are imported here at module level: this module is loaded into
every kernel and must stay cheap.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

from . import capture, convert
from .capture import CappedDisplay, CappedStream, OutputLimitExceeded, cell_outputs, data_size
from .convert import to_json

PAYLOAD_SOURCE = "nbmesh"  # the execute reply's payload entry that carries the runner's report



class _Compiled:
    def __init__(self, index: int, role: str, source: str) -> None:
        self.index = index
        self.role = role
        tree = ast.parse(TransformerManager().transform_cell(source))
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        # Tracebacks number cells from 1, as JupyterLab does; ``index`` stays 0-based for the records.
        where = f"<cell {index + 1}>"
        self.body = compile(tree, where, "exec")
        self.last = compile(ast.Expression(last.value), where, "eval") if last else None


class Runner:
    def __init__(self, shell: Any, spec_json: str, nonce: str = "") -> None:
        spec = json.loads(spec_json)
        self.shell = shell
        self.nonce = nonce
        self.max_output = int(spec["max_output"])  # the runtime's settings.pool.max_output
        self.setup_cells = [_Compiled(c["index"], "setup", c["source"]) for c in spec["setup_cells"]]
        self.run_cells = [_Compiled(c["index"], c["role"], c["source"]) for c in spec["run_cells"]]
        self.baseline: dict[str, Any] = {}
        self.baseline_children: set[int] = set()
        self.baseline_threads: set[int | None] = set()
        self._display = CappedDisplay()
        self._pristine = _fingerprint()

    def setup(self, seq: int = 0) -> None:
        """Run the setup cells once; the namespace they leave is what every run starts from."""
        records, error = self._execute(self.setup_cells)
        self.baseline = dict(self.shell.user_ns)
        # Processes and threads setup started (a local server, say) belong to the product, not to one run.
        self.baseline_children = _children() if _has_children() else set()
        self.baseline_threads = {t.ident for t in threading.enumerate()}
        self._reply({"cells": records, "error": error}, seq)

    def run(self, params_json: str, seq: int = 0) -> None:
        """One invocation. Never raises: failures are reported in its report (the reply's payload)."""
        params = json.loads(params_json)
        try:
            records, error = self._execute(self.run_cells, params)
            payload: dict[str, Any] = {"cells": records, "error": error}
            if error is None:
                try:
                    payload["result"] = to_json(self._result)
                except TypeError as exc:
                    payload["error"] = _error("ResultNotSerializable", str(exc), [])
                else:
                    size = len(json.dumps(payload["result"], default=str))
                    if size > self.max_output:
                        del payload["result"]
                        payload["error"] = _error(
                            "OutputLimitExceeded", f"The result is {size} bytes of JSON, above the output limit ({self.max_output} bytes).", []
                        )
        finally:
            self._result = None
            self._restore()
        stopped = self._stop_leftover_children()
        if stopped and payload["error"] is None:
            payload.pop("result", None)
            payload["error"] = _error(
                "ChildProcessLeft",
                f"The run left {len(stopped)} child process(es) running (pid {', '.join(map(str, stopped))}); "
                "they were killed. Wait for the processes a run starts before it ends.",
                [],
            )
        self._reply(payload, seq)

    def _reply(self, payload: dict[str, Any], seq: int) -> None:
        """Leave the report for request ``seq``, sealed with this runner's nonce, as the reply's payload
        (``single``: it replaces any payload a product wrote under the same source)."""
        retire = self._why_retire()
        if retire:
            payload["retire"] = retire
        report = json.dumps({**payload, "nonce": self.nonce, "seq": seq}, allow_nan=False, default=str)
        self.shell.payload_manager.write_payload({"source": PAYLOAD_SOURCE, "report": report}, single=True)

    def _why_retire(self) -> str | None:
        """Why this kernel must not serve another run, if it must not."""
        changed = [name for space, name, value in self._pristine if space.get(name, _MISSING) is not value]
        if changed:
            return f"the run changed the runner ({', '.join(changed[:5])})"
        if getattr(self.shell, "exit_now", False):
            return "the run called exit()"
        left = [t.name for t in threading.enumerate() if t.ident not in self.baseline_threads]
        if left:
            return f"the run left {len(left)} thread(s) running ({', '.join(left[:5])})"
        return None

    def _stop_leftover_children(self) -> list[int]:
        """Kill and reap the processes this run started and left behind; the pids that were still running."""
        stopped: list[int] = []
        # A killed child's own children are re-parented to this kernel (a subreaper): look again.
        for _ in range(5):
            if not _has_children():
                break
            left = _children() - self.baseline_children
            if not left:
                break
            for pid in left:
                if not _is_zombie(pid):
                    stopped.append(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        return stopped

    def _restore(self) -> None:
        ns = self.shell.user_ns
        for name in [n for n in ns if n not in self.baseline]:
            del ns[name]
        for name, value in self.baseline.items():
            if ns.get(name, _MISSING) is not value:
                ns[name] = value

    def _execute(self, cells: list[_Compiled], params: dict[str, Any] | None = None) -> tuple[list, dict | None]:
        ns = self.shell.user_ns
        budget = [self.max_output]
        records: list[dict[str, Any]] = []
        self._result = None
        for cell in cells:
            started = time.time()
            record: dict[str, Any] = {"index": cell.index, "start": started, "outputs": []}
            records.append(record)
            if cell.role == "parameters":
                # The defaults are already in params: binding them is the parameters cell's whole job.
                ns.update(params or {})
                record.update(status="completed", end=time.time())
                continue
            stdout, stderr = CappedStream("stdout", budget), CappedStream("stderr", budget)
            error = None
            value = None
            display = self._display.start(budget)
            try:
                old = sys.stdout, sys.stderr, self.shell.display_pub
                sys.stdout, sys.stderr, self.shell.display_pub = stdout, stderr, display
                try:
                    exec(cell.body, ns)
                    if cell.last is not None:
                        value = eval(cell.last, ns)
                finally:
                    sys.stdout, sys.stderr, self.shell.display_pub = old
                if value is not None:
                    shown = self._execute_result(value)
                    budget[0] -= data_size(shown["data"])
                    if budget[0] < 0:
                        raise OutputLimitExceeded("The output cell's value is displayed larger than the output limit.")
            except OutputLimitExceeded as exc:
                error = _error("OutputLimitExceeded", f"{exc} The limit is {self.max_output} bytes.", [])
            except BaseException as exc:  # noqa: BLE001 - product code may raise anything, even SystemExit
                error = _error(type(exc).__name__, str(exc), _traceback(exc))
            record["outputs"] = cell_outputs(stdout, stderr, display.kept)
            if error is None and value is not None:
                record["outputs"].append(shown)
            if cell.role == "output" and error is None:
                self._result = value
            record.update(status="failed" if error else "completed", end=time.time())
            if error:
                record["outputs"].append({"output_type": "error", **error})
                return records, error
        return records, None

    def _execute_result(self, value: Any) -> dict[str, Any]:
        try:
            data, metadata = self.shell.display_formatter.format(value)
        except Exception:  # noqa: BLE001 - a broken repr must not fail the run
            data, metadata = {"text/plain": object.__repr__(value)}, {}
        return {"output_type": "execute_result", "data": data, "metadata": metadata}


_MISSING = object()


def _fingerprint() -> list[tuple[Any, str, Any]]:
    """Every name of this module, of the sibling modules it runs on, and of their classes, with the object it is bound to now."""
    spaces = []
    for module in (sys.modules[__name__], capture, convert):
        names = vars(module)
        spaces += [names] + [vars(v) for v in names.values() if isinstance(v, type) and v.__module__ == module.__name__]
    return [(space, name, value) for space in spaces for name, value in list(space.items())]


def _error(ename: str, evalue: str, tb: list[str]) -> dict[str, Any]:
    return {"ename": ename, "evalue": evalue, "traceback": tb}


def _traceback(exc: BaseException) -> list[str]:
    # Drop the runner's own frame: the author wants to see their cell, not ours.
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    return [line.rstrip("\n") for line in traceback.format_exception(type(exc), exc, tb)]


def _has_children() -> bool:
    """Whether this process has any child at all: one syscall, so the common case costs nothing."""
    if not hasattr(os, "waitid"):  # not on macOS: leftover processes are then not looked for
        return False
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _children() -> set[int]:
    import psutil  # only reached when there are children: a scan of /proc, a few ms

    return {p.pid for p in psutil.Process().children()}


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


