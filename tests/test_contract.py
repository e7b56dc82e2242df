"""docs/reference/http-api.md, "Data contract": `GET /api/products/{name}/contract` is an ODCS v3.0.2
document that the outside judge, datacontract-cli, run as a real process from its own venv, lints and
tests against the running product (behind a token too); a contract the data breaks fails its test.

The judge is `NBMESH_DATACONTRACT` (scripts/test.sh makes .venv-datacontract and sets it), else
.venv-datacontract/bin/datacontract: without it these tests fail, never skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, error_of, invoke, publish
from tests.test_access import TOKEN, write_access

TABLE = [
    ("parameters", "rows: int = 3"),
    ("", "import pandas as pd"),
    ("output", "pd.DataFrame({'i': range(rows), 'label': [f'x{i}' for i in range(rows)], 'ratio': [i / 2 for i in range(rows)],"
               " 'ok': [i % 2 == 0 for i in range(rows)]})"),
]
SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "i": {"type": "integer", "description": "row number"},
            "label": {"type": "string"},
            "ratio": {"type": "number"},
            "ok": {"type": "boolean"},
        },
        "required": ["i", "label"],
    },
}


def judge() -> str:
    path = os.environ.get("NBMESH_DATACONTRACT") or str(ROOT / ".venv-datacontract" / "bin" / "datacontract")
    if not Path(path).is_file():
        pytest.fail(f"datacontract-cli is not at {path}: run scripts/test.sh, or set NBMESH_DATACONTRACT to its `datacontract`.")
    return path


def datacontract(command: str, document: str, folder: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = folder / "contract.yaml"
    path.write_text(document)
    # Only what it needs from this environment: no credential leaks in, and its own settings stay default.
    base = {"PATH": os.environ["PATH"], "HOME": str(folder), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([judge(), command, str(path)], capture_output=True, text=True, env={**base, **(env or {})},
                          cwd=folder, timeout=300)


def contract_of(http, name: str) -> str:
    answer = http.get(f"/api/products/{name}/contract")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/yaml")
    return answer.text


def test_the_contract_of_a_product_without_output_schema_lints_and_tests(runtime, http, tmp_path):
    name = publish(http, TABLE, owner="team-a", title="Demo table", description="Rows for the test.", cache_ttl=60,
                   triggers=[{"schedule": "0 6 * * *", "timezone": "Europe/Paris"}])
    invoke(http, name)
    text = contract_of(http, name)
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "v3.0.2" and doc["kind"] == "DataContract" and doc["status"] == "active"
    assert (doc["id"], doc["name"], doc["version"]) == (f"urn:nbmesh:product:{name}", name, "1")
    assert doc["description"]["purpose"] == "Rows for the test."
    assert doc["team"] == [{"username": "team-a", "role": "owner"}]
    columns = {p["name"]: p.get("logicalType") for p in doc["schema"][0]["properties"]}
    assert columns == {"i": "integer", "label": "string", "ratio": "number", "ok": "boolean"}
    assert doc["servers"] == [{"server": "nbmesh", "type": "api", "location": f"{runtime.url}/api/products/{name}/result"}]
    assert {(s["property"], s["value"]) for s in doc["slaProperties"]} == {("frequency", "0 6 * * * (Europe/Paris)"), ("latency", 60)}
    lint = datacontract("lint", text, tmp_path)
    assert lint.returncode == 0 and "valid against ODCS v3.0.2" in lint.stdout, lint.stdout + lint.stderr
    test = datacontract("test", text, tmp_path)
    assert test.returncode == 0 and "passed" in test.stdout and "failed" not in test.stdout, test.stdout + test.stderr


def test_the_schema_comes_from_output_schema_and_a_broken_contract_fails_its_test(http, tmp_path):
    name = publish(http, TABLE, output_schema=SCHEMA)
    text = contract_of(http, name)  # no run yet: the schema alone says the columns
    properties = yaml.safe_load(text)["schema"][0]["properties"]
    assert properties[0] == {"name": "i", "logicalType": "integer", "description": "row number", "required": True}
    assert [p.get("required", False) for p in properties] == [True, True, False, False]
    assert datacontract("lint", text, tmp_path).returncode == 0
    test = datacontract("test", text, tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    # The judge really reads the product: a contract its data break fails.
    broken = text.replace("  - name: label\n    logicalType: string", "  - name: label\n    logicalType: integer")
    assert broken != text
    failed = datacontract("test", broken, tmp_path)
    assert failed.returncode != 0 and "failed" in failed.stdout, failed.stdout
    missing = text.replace("  - name: label\n", "  - name: absent\n")
    assert datacontract("test", missing, tmp_path).returncode != 0


def test_the_judge_reads_a_product_behind_a_token(fresh_runtime, tmp_path):
    access = write_access(tmp_path / "access.json", {"reader": {"invoke": ["guarded"]}}, {"reader": "token-of-reader"})
    rt = fresh_runtime("--token", TOKEN, "--access", access)
    with rt.client(headers={"Authorization": f"Bearer {TOKEN}"}) as admin:
        publish(admin, TABLE, "guarded", output_schema=SCHEMA)
    with rt.client(headers={"Authorization": "Bearer token-of-reader"}) as reader:
        text = contract_of(reader, "guarded")
    assert datacontract("test", text, tmp_path, {"DATACONTRACT_API_HEADER_AUTHORIZATION": "Bearer token-of-reader"}).returncode == 0
    refused = datacontract("test", text, tmp_path)
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr


def test_a_missing_product_has_no_contract_and_one_never_run_has_no_columns(http, tmp_path):
    error_of(http.get("/api/products/no-such-product/contract"), 404)
    name = publish(http, TABLE)
    text = contract_of(http, name)
    doc = yaml.safe_load(text)
    assert doc["schema"][0]["properties"] == [] and "team" not in doc and "slaProperties" not in doc
    assert datacontract("lint", text, tmp_path).returncode == 0
