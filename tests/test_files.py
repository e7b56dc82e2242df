"""A product's files (``metadata.nbmesh.files``): sent with the notebook, stored by digest, read-only to its kernel.

Everything runs for real: `nbmesh publish` and the Python client read the files from the notebook's
folder, the runtime (started in a folder of its own, not the repository) stores them, and the
product's kernel reads them by relative path from its working folder. The browser's Publish, through
the server extension, is in test_lab_server.py.
"""

from __future__ import annotations

import hashlib
import http.client as httpclient
import json
from pathlib import Path

import httpx
import pytest

from kernel_runtime import Client
from kernel_runtime.errors import InvalidNotebook
from tests.conftest import Runtime, cli, error_of, free_port, invoke, make_notebook, unique, wait_for
from tests.test_store import backend, seaweed  # noqa: F401 - both store backends, the S3 one on SeaweedFS

MIB = 1024 * 1024
FRUIT = b"name,kg\napple,3\npear,5\nplum,7\n"
LOOKUP = b'{"apple": "red"}'
READER = [
    ("setup", "import json, os\nimport pandas as pd"),
    ("output", "{'kg': int(pd.read_csv('data/fruit.csv')['kg'].sum()), 'apple': json.load(open('lookup.json'))['apple'],"
               " 'here': sorted(os.listdir('.')), 'data': sorted(os.listdir('data'))}"),
]


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Runtime:
    """A runtime whose working directory is an empty folder of its own: nothing may depend on it."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    store = tmp_path_factory.mktemp("files-store")
    rt = Runtime(store=str(store), port=free_port(), args=["--pool-size", "2"], cwd=cwd).start()
    yield rt
    rt.stop()


def write_product(folder: Path, cells, files: dict[str, bytes], patterns: list[str], name: str | None = None) -> Path:
    """A notebook file in ``folder`` with ``files`` beside it (relative path -> bytes); its path."""
    name = name or unique("files")
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    path = folder / "product.ipynb"
    path.write_text(json.dumps(make_notebook(cells, name=name, files=patterns)))
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blobs(store: str) -> set[str]:
    folder = Path(store) / "files" / "sha256"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def multipart(parts: list[tuple[bytes, bytes | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body written by hand (name, filename, data), for what no client would send."""
    boundary = b"nbmesh-files-test"
    body = b""
    for name, filename, data in parts:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        body += b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + data + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


# publishing with files ----------------------------------------------------------------------
def test_cli_publish_sends_the_files_and_the_kernel_reads_them_from_its_folder(elsewhere, tmp_path):
    path = write_product(tmp_path, READER, {"data/fruit.csv": FRUIT, "data/notes.txt": b"x", "lookup.json": LOOKUP},
                         ["data/*.csv", "lookup.json"])
    done = cli("publish", str(path), "--url", elsewhere.url)  # run from the repository, the notebook elsewhere
    assert done.returncode == 0, done.stdout + done.stderr
    name = json.loads(path.read_text())["metadata"]["nbmesh"]["name"]
    with elsewhere.client() as http:
        result = invoke(http, name)["result"]
    # Only what the globs name travelled (not notes.txt, not the notebook), under the same paths.
    assert result == {"kg": 15, "apple": "red", "here": ["data", "lookup.json"], "data": ["fruit.csv"]}
    assert {sha(FRUIT), sha(LOOKUP)} <= blobs(elsewhere.store)
    stored = json.loads((Path(elsewhere.store) / "products" / name / "versions" / "00000001.json").read_text())
    assert stored["files"] == {
        "data/fruit.csv": {"sha256": sha(FRUIT), "size": len(FRUIT)},
        "lookup.json": {"sha256": sha(LOOKUP), "size": len(LOOKUP)},
    }


def test_a_glob_naming_a_folder_takes_the_files_below_it(elsewhere, tmp_path):
    cells = [("setup", "import os"), ("output", "sorted(os.path.join(d, f) for d, _, fs in os.walk('ref') for f in fs)")]
    files = {"ref/a.txt": b"a", "ref/deep/b.txt": b"b", "other.txt": b"o", "ref/.ipynb_checkpoints/a-checkpoint.txt": b"c"}
    path = write_product(tmp_path, cells, files, ["ref"])
    product = Client(elsewhere.url).publish(path)
    with elsewhere.client() as http:
        assert invoke(http, product["name"])["result"] == ["ref/a.txt", "ref/deep/b.txt"]


def test_unchanged_republish_makes_no_version_and_a_changed_file_does(elsewhere, tmp_path):
    name = unique("republish")
    notebook = make_notebook(READER, name=name, files=["data/fruit.csv", "lookup.json"])
    form = [("notebook", ("product.ipynb", json.dumps(notebook).encode(), "application/json")),
            ("files", ("data/fruit.csv", FRUIT, "text/csv")), ("files", ("lookup.json", LOOKUP, "application/json"))]
    with elsewhere.client() as http:
        first = http.put(f"/api/products/{name}", files=form)
        assert first.status_code == 201 and first.json()["version"] == 1, first.text
        again = http.put(f"/api/products/{name}", files=form)
        assert again.status_code == 200 and again.json()["versions"] == [1], again.text
        # Running the notebook in JupyterLab changes outputs and counts, not the product.
        ran = json.loads(json.dumps(notebook))
        ran["cells"][1]["outputs"] = [{"output_type": "execute_result", "data": {"text/plain": "{}"}, "metadata": {}, "execution_count": 4}]
        ran["cells"][1]["execution_count"] = 4
        ran_form = [("notebook", ("product.ipynb", json.dumps(ran, indent=2).encode(), "application/json")), *form[1:]]
        assert http.put(f"/api/products/{name}", files=ran_form).status_code == 200
        # The CLI's republish of the same folder is the same: no new version.
        write_product(tmp_path, READER, {"data/fruit.csv": FRUIT, "lookup.json": LOOKUP}, ["data/fruit.csv", "lookup.json"], name)
        (tmp_path / "product.ipynb").write_text(json.dumps(notebook, indent=1))  # the same cells (make_notebook's ids are new)
        assert Client(elsewhere.url).publish(tmp_path / "product.ipynb")["versions"] == [1]

        heavier = FRUIT + b"fig,100\n"
        changed = http.put(f"/api/products/{name}", files=[form[0], ("files", ("data/fruit.csv", heavier, "text/csv")), form[2]])
        assert changed.status_code == 201 and changed.json()["versions"] == [1, 2], changed.text
        assert invoke(http, name)["result"]["kg"] == 115
        assert invoke(http, f"{name}@1")["result"]["kg"] == 15  # the old version keeps its own files
    # Content-addressed: the unchanged lookup.json is one blob for both versions.
    assert {sha(FRUIT), sha(heavier), sha(LOOKUP)} <= blobs(elsewhere.store)
    versions = [json.loads(p.read_text())["files"] for p in sorted((Path(elsewhere.store) / "products" / name / "versions").iterdir())]
    assert versions[0]["lookup.json"] == versions[1]["lookup.json"]


# what is refused ------------------------------------------------------------------------------
def test_every_bad_path_is_listed_and_nothing_is_stored(elsewhere):
    name = unique("badpaths")
    notebook = make_notebook(READER, name=name, files=["data/*.csv", "missing/*.csv"])
    body, headers = multipart([
        (b"notebook", b"product.ipynb", json.dumps(notebook).encode()),
        (b"files", b"data/fresh.csv", b"unique bytes " + name.encode()),
        (b"files", b"../escape.csv", b"x"),
        (b"files", b"/etc/cron.d/evil", b"x"),
        (b"files", b"data/../../up.csv", b"x"),
        (b"files", b"data/fresh.csv", b"again"),
        (b"files", b"unnamed.txt", b"x"),
        (b"files", b"data/bell\x07.csv", b"x"),
        (b"files", b"data/\xff\xfe.csv", b"x"),
        (b"files", b"C:\\Windows\\evil.csv", b"x"),
        (b"stray", None, b"x"),
    ])
    with elsewhere.client() as http:
        error = error_of(http.put(f"/api/products/{name}", content=body, headers=headers), 422)
        assert http.get(f"/api/products/{name}").status_code == 404
    messages = {d.get("file"): d["message"] for d in error["details"]}
    assert "leaves the notebook's folder" in messages["../escape.csv"]
    assert "absolute" in messages["/etc/cron.d/evil"]
    assert "leaves the notebook's folder" in messages["data/../../up.csv"]
    assert "sent twice" in messages["data/fresh.csv"]
    assert "not named by metadata.nbmesh.files" in messages["unnamed.txt"]
    assert "control character" in messages["data/bell\x07.csv"]
    assert "not valid UTF-8" in messages["data/\\xff\\xfe.csv"]
    assert "evil.csv" in messages  # python-multipart keeps only the last segment of a Windows path
    assert "matches no file" in messages["missing/*.csv"]
    assert any("Unknown part 'stray'" in d["message"] for d in error["details"])
    assert sha(b"unique bytes " + name.encode()) not in blobs(elsewhere.store)  # not even the good file


def test_globs_that_leave_the_folder_are_publish_problems(elsewhere):
    name = unique("badglobs")
    notebook = make_notebook(READER, name=name, files=["../*.csv", "/etc/passwd", "ok.csv", 7])
    with elsewhere.client() as http:
        error = error_of(http.put(f"/api/products/{name}", json=notebook), 422)
        assert "must be a list of paths or globs" in error["details"][-1]["message"]
        notebook["metadata"]["nbmesh"]["files"] = ["../*.csv", "/etc/passwd"]
        error = error_of(http.put(f"/api/products/{name}", json=notebook), 422)
    messages = {d.get("file"): d["message"] for d in error["details"]}
    assert "leaves the notebook's folder" in messages["../*.csv"] and "absolute" in messages["/etc/passwd"]


def test_a_link_leading_out_of_the_folder_is_refused_before_sending(elsewhere, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_bytes(b"secret,1\n")
    folder = tmp_path / "nb"
    folder.mkdir()
    path = write_product(folder, READER, {"lookup.json": LOOKUP}, ["data/*.csv", "lookup.json"])
    (folder / "data").mkdir()
    (folder / "data" / "fruit.csv").symlink_to(outside)
    name = json.loads(path.read_text())["metadata"]["nbmesh"]["name"]
    done = cli("publish", str(path), "--url", elsewhere.url)
    assert done.returncode != 0 and "data/fruit.csv" in done.stdout + done.stderr
    assert "link leading out" in done.stdout + done.stderr
    with pytest.raises(InvalidNotebook) as caught:
        Client(elsewhere.url).publish(path)
    assert [d["file"] for d in caught.value.details] == ["data/fruit.csv"]
    with elsewhere.client() as http:
        assert http.get(f"/api/products/{name}").status_code == 404
    # A link that stays inside the folder is an ordinary file.
    (folder / "data" / "fruit.csv").unlink()
    (folder / "real.csv").write_bytes(FRUIT)
    (folder / "data" / "fruit.csv").symlink_to(folder / "real.csv")
    product = Client(elsewhere.url).publish(path)
    with elsewhere.client() as http:
        assert invoke(http, product["name"])["result"]["kg"] == 15


def test_size_limits_answer_413_and_store_nothing(elsewhere):
    name = unique("big")
    small = json.dumps(make_notebook(READER, name=name, files=["data/*.csv"])).encode()
    with elsewhere.client() as http:
        huge_notebook = small[:-1] + b', "padding": "' + b"x" * (16 * MIB) + b'"}'
        body, headers = multipart([(b"notebook", b"product.ipynb", huge_notebook)])
        assert "notebook is larger than the limit" in error_of(http.put(f"/api/products/{name}", content=body, headers=headers), 413)["error"]
        many = [(b"notebook", b"product.ipynb", small), *[(b"files", f"data/{i}.csv".encode(), b"1") for i in range(1001)]]
        body, headers = multipart(many)
        assert "more than 1000 files" in error_of(http.put(f"/api/products/{name}", content=body, headers=headers), 413)["error"]
        assert http.get(f"/api/products/{name}").status_code == 404
    # A declared body above 256 MiB is refused before any of it is read.
    conn = http_client(elsewhere)
    conn.putrequest("PUT", f"/api/products/{name}")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(256 * MIB + 1))
    conn.endheaders()
    answer = conn.getresponse()
    assert answer.status == 413 and "limit is 268435456 bytes" in json.loads(answer.read())["error"]
    conn.close()


def http_client(rt: Runtime) -> httpclient.HTTPConnection:
    return httpclient.HTTPConnection("127.0.0.1", rt.port, timeout=30)


# what the kernel sees -----------------------------------------------------------------------------
def contained(http: httpx.Client) -> None:
    """Read-only files and hidden folders are the sandbox's: these tests need bubblewrap in force
    (scripts/test.sh installs it), and fail without it rather than pass for nothing."""
    sandbox = http.get("/healthz").json()["containment"]["sandbox"]
    assert sandbox == "bubblewrap", f"bubblewrap is not in force ({sandbox}): install Debian's bubblewrap"


def test_the_files_are_read_only_to_the_product(elsewhere, tmp_path):
    writer = [("parameters", "target = 'data/fruit.csv'"), ("output", "open(target, 'w').write('overwritten') and 'wrote'")]
    path = write_product(tmp_path, writer, {"data/fruit.csv": FRUIT}, ["data/fruit.csv"])
    name = Client(elsewhere.url).publish(path)["name"]
    with elsewhere.client() as http:
        contained(http)
        for target in ("data/fruit.csv", "new.txt", "data/new.csv"):
            run = invoke(http, name, 500, target=target)
            assert run["error"]["ename"] in ("PermissionError", "OSError") and "Errno" in run["error"]["evalue"], run["error"]
    reader = tmp_path / "reader"
    reader.mkdir()
    path = write_product(reader, [("setup", "import pandas as pd"), ("output", "int(pd.read_csv('data/fruit.csv')['kg'].sum())")],
                         {"data/fruit.csv": FRUIT}, ["data/fruit.csv"])
    with elsewhere.client() as http:
        assert invoke(http, Client(elsewhere.url).publish(path)["name"])["result"] == 15  # the blob is intact


def test_another_products_files_are_not_visible(elsewhere, tmp_path):
    secret = b"secret," + unique("s").encode() + b"\n"
    owner = write_product(tmp_path / "a", [("output", "open('secret.csv').read()")], {"secret.csv": secret}, ["secret.csv"])
    snoop_cells = [("parameters", "paths: list = []"),
                   ("setup", "import os"),
                   ("output", "{'here': os.listdir('.'), 'read': [p for p in paths if os.path.exists(p)]}")]
    snooper = make_notebook(snoop_cells, name=unique("snoop"))
    with elsewhere.client() as http:
        contained(http)
        assert invoke(http, Client(elsewhere.url).publish(owner)["name"])["result"] == secret.decode()
        # Where the owner's file lives on this machine: the runtime's file cache and the owner kernel's folder.
        on_host = [str(p) for p in Path("/tmp").glob(f"nbmesh-*/**/{sha(secret)}")]
        on_host += [str(p) for p in Path("/tmp").glob("nbmesh-ipc-*/work/kernel-*/secret.csv")]
        assert len(on_host) >= 2, on_host
        assert http.put(f"/api/products/{snooper['metadata']['nbmesh']['name']}", json=snooper).status_code == 201
        seen = invoke(http, snooper["metadata"]["nbmesh"]["name"], paths=on_host)["result"]
    assert seen == {"here": [], "read": []}


def test_without_a_sandbox_the_kernel_still_works_in_its_files_folder(tmp_path):
    cwd = tmp_path / "runtime-cwd"
    cwd.mkdir()
    rt = Runtime(store=str(tmp_path / "store"), port=free_port(), args=["--sandbox", "none", "--pool-size", "1"], cwd=cwd).start()
    try:
        path = write_product(tmp_path / "nb", READER, {"data/fruit.csv": FRUIT, "lookup.json": LOOKUP}, ["data/*.csv", "lookup.json"])
        name = Client(rt.url).publish(path)["name"]
        with rt.client() as http:
            assert http.get("/healthz").json()["containment"]["sandbox"] == "none"
            assert invoke(http, name)["result"] == {"kg": 15, "apple": "red", "here": ["data", "lookup.json"], "data": ["fruit.csv"]}
    finally:
        rt.stop()


# both store backends --------------------------------------------------------------------------------
def test_files_travel_through_either_store_backend_and_survive_a_restart(backend, fresh_runtime, tmp_path):  # noqa: F811
    path = write_product(tmp_path, READER, {"data/fruit.csv": FRUIT, "lookup.json": LOOKUP}, ["data/*.csv", "lookup.json"])
    rt = fresh_runtime("--pool-size", "1", store=backend.url, env=backend.env)
    name = Client(rt.url).publish(path)["name"]
    with rt.client() as http:
        assert invoke(http, name)["result"]["kg"] == 15
    store = backend.open()
    assert store.exists(f"files/sha256/{sha(FRUIT)}") and store.exists(f"files/sha256/{sha(LOOKUP)}")
    assert not store.exists(f"files/sha256/{sha(b'never stored')}")
    rt.stop()
    # A new process has an empty file cache: the kernel's files come from the store again.
    rt = fresh_runtime("--pool-size", "1", store=backend.url, env=backend.env)
    with rt.client() as http:
        wait_for(lambda: http.get(f"/api/products/{name}").status_code == 200, 30, "the catalog to load")
        assert invoke(http, name)["result"] == {"kg": 15, "apple": "red", "here": ["data", "lookup.json"], "data": ["fruit.csv"]}
        assert Client(rt.url).publish(path)["versions"] == [1]  # unchanged: nothing new stored
