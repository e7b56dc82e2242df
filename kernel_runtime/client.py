"""The Python client (README.md, "The Python client") of the HTTP API, over httpx.

``url`` defaults to ``NBMESH_URL`` (else :data:`~kernel_runtime.settings.DEFAULT_URL`) and ``token``
to ``NBMESH_TOKEN``. HTTP errors come back as the same typed exceptions the
runtime raised, found by the error body's ``type`` (the status only says which
kind when a body has no type nbmesh knows); a run that failed raises
:class:`RunFailed` carrying the run.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from .errors import (
    BODY_TYPES,
    Forbidden,
    InvalidNotebook,
    InvalidRequest,
    NbmeshError,
    NotFound,
    PayloadTooLarge,
    RunFailed,
    Unauthorized,
    UnsupportedMediaType,
)
from .model.bundle import collect, publish_form
from .model.records import SUCCEEDED
from .settings import DEFAULT_URL

# Only for a body without a known ``type`` (a proxy's page, an older runtime): the statuses that
# one class alone answers with; any other status (422, 503, ...) raises the root NbmeshError.
_BY_STATUS: dict[int, type[NbmeshError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


# The tabular formats the runtime writes, by the name ``result_bytes`` takes (docs/reference/http-api.md, "Formats").
RESULT_MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "arrow": "application/vnd.apache.arrow.stream"}


def default_url() -> str:
    return os.environ.get("NBMESH_URL") or DEFAULT_URL


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 600.0) -> None:
        self.url = (url or default_url()).rstrip("/")
        token = token if token is not None else os.environ.get("NBMESH_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if not self.url.lower().startswith(("http://", "https://")):
            raise InvalidRequest(f"The runtime URL must start with http:// or https://, got {self.url!r}.")
        try:
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        except httpx.InvalidURL as exc:
            raise InvalidRequest(f"The runtime URL {self.url!r} is not valid: {exc}.") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if "json" in kwargs:
            # Python's own encoding, which writes NaN and escapes lone surrogates, rather than httpx's, which
            # raises on them: the runtime then says what is wrong (a 422 naming where), as it does for anyone.
            kwargs["content"] = json.dumps(kwargs.pop("json")).encode()
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise NbmeshError(f"Cannot reach the nbmesh runtime at {self.url}: {str(exc).rstrip('.')}.") from exc
        if response.status_code < 400:
            return response
        body = _json(response)
        if response.status_code in (500, 504) and "run_id" in body:
            return response  # a failed or timed-out run answers with its record
        raise error_of(response.status_code, body, path)

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz").json()

    def products(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/products").json()["products"]

    def product(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/api/products/{name}").json()

    def publish(self, notebook: str | Path | dict[str, Any], name: str | None = None) -> dict[str, Any]:
        """Publish a notebook (path or dict) under ``name``, else its metadata name, else the file's stem.

        A notebook file whose ``metadata.nbmesh.files`` names files is sent with them, from its folder.
        """
        return self.publish_with_status(notebook, name)[0]

    def publish_with_status(self, notebook: str | Path | dict[str, Any], name: str | None = None) -> tuple[dict[str, Any], bool]:
        """:meth:`publish`, and whether it made a new version (False: nothing changed, the current one)."""
        if isinstance(notebook, dict):
            nb, stem, path = notebook, None, None
        else:
            path = Path(notebook)
            try:
                nb = json.loads(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise InvalidRequest(f"Cannot read {path}: {exc.strerror}.") from exc
            except ValueError as exc:
                raise InvalidNotebook(f"{path} is not notebook JSON: {exc}.") from exc
            stem = path.stem.lower().replace("_", "-")
        meta_name = (nb.get("metadata", {}).get("nbmesh") or {}).get("name") if isinstance(nb, dict) else None
        name = name or meta_name or stem
        if not name:
            raise InvalidRequest("No product name: pass one or set metadata.nbmesh.name.")
        meta = nb.get("metadata", {}).get("nbmesh") if isinstance(nb, dict) else None
        if path is None or not isinstance(meta, dict) or "files" not in meta:
            answer = self._request("PUT", f"/api/products/{name}", json=nb)
            return answer.json(), answer.status_code == 201
        files, problems = collect(path.parent, meta)
        if problems:
            raise InvalidNotebook(f"{path}: its files cannot be sent; nothing was published.", problems)
        with ExitStack() as stack:
            form = publish_form(path.read_bytes(), files, stack)
            answer = self._request("PUT", f"/api/products/{name}", files=form)
            return answer.json(), answer.status_code == 201

    def unpublish(self, name: str) -> None:
        # Every change declares JSON, even without a body: a runtime without a token requires it.
        self._request("DELETE", f"/api/products/{name}", headers={"Content-Type": "application/json"})

    def run(self, name: str, /, **params: Any) -> dict[str, Any]:
        """Invoke and wait; the whole run record, whatever its status."""
        return self._request("POST", f"/api/products/{name}/invoke", json=params).json()

    def invoke(self, name: str, /, **params: Any) -> Any:
        """Invoke and wait; the result, or RunFailed carrying the run."""
        return _succeeded(self.run(name, **params), name)["result"]

    def result(self, name: str, /, format: str = "pandas", **params: Any) -> Any:
        """Invoke and wait; the result as a pandas DataFrame (``"pandas"``, read from an Arrow IPC stream),
        a pyarrow Table (``"arrow"``), CSV text (``"csv"``) or its JSON value (``"json"``). A result that is
        no table raises NotAcceptable in the first three; a failed run raises RunFailed carrying the run."""
        if format == "json":
            return self.invoke(name, **params)
        data = self.result_bytes(name, "arrow" if format == "pandas" else format, **params)
        if format == "csv":
            return data.decode("utf-8")
        import pyarrow  # only a table result needs it

        table = pyarrow.ipc.open_stream(data).read_all()
        return table if format == "arrow" else table.to_pandas()

    def result_bytes(self, name: str, /, fmt: str, **params: Any) -> bytes:
        """Invoke and wait; the result as the runtime writes it in ``fmt``: csv, parquet or arrow (an IPC stream)."""
        if fmt not in RESULT_MEDIA:
            raise InvalidRequest(f"Unknown format {fmt!r}: one of {', '.join(RESULT_MEDIA)} (or json, pandas for result()).")
        response = self._request("POST", f"/api/products/{name}/invoke", json=params, headers={"Accept": RESULT_MEDIA[fmt]})
        if response.status_code >= 500:
            _succeeded(response.json(), name)
        return response.content

    def submit(self, name: str, /, **params: Any) -> str:
        """Start a background run; its run_id."""
        return self._request("POST", f"/api/products/{name}/runs", json=params).json()["run_id"]

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/runs/{run_id}").json()

    def run_notebook(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/runs/{run_id}/notebook").json()

    def runs(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/products/{name}/runs", params={"limit": limit}).json()["runs"]

    def emit(self, topic: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._request("POST", f"/api/events/{topic}", json=payload or {}).json()


def _succeeded(run: dict[str, Any], name: str) -> dict[str, Any]:
    """``run`` if it succeeded, else RunFailed carrying it."""
    if run["status"] != SUCCEEDED:
        error = run.get("error") or {}
        raise RunFailed(f"Run {run['run_id']} of {name} {run['status']}: {error.get('ename')}: {error.get('evalue')}", run)
    return run


def error_of(status: int, body: dict[str, Any], path: str) -> NbmeshError:
    """The exception an error answer stands for: the class its body's ``type`` names, else its status's."""
    kind = body.get("type")
    cls = (BODY_TYPES.get(kind) if isinstance(kind, str) else None) or _BY_STATUS.get(status, NbmeshError)
    return cls(body.get("error") or f"HTTP {status} from {path}", body.get("details"))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
