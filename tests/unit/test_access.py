"""kernel_runtime.http.access: the access file, identifying callers by token digest, and their rights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from kernel_runtime.http.access import OPEN, Access, Principal, load_principals, new_principal, token_digest
from kernel_runtime.errors import Forbidden, InvalidConfig

SALES, BI, PLATFORM = "sales-token", "bi-token", "platform-token"
DOC = {
    "principals": [
        {"name": "sales-team", "token_sha256": token_digest(SALES), "publish": ["sales"], "invoke": ["*"], "emit": ["sales.*"]},
        {"name": "bi-dashboard", "token_sha256": token_digest(BI).upper(), "invoke": ["sales-summary", "owner:finance"]},
        {"name": "platform", "token_sha256": token_digest(PLATFORM), "admin": True},
    ]
}


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "access.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def principal(**entry: Any) -> Principal:
    return Principal.from_json({"name": "p", "token_sha256": "0" * 64, **entry})


# reading the file -----------------------------------------------------------------------------------
def test_a_valid_file_gives_each_principal_by_its_lowercase_digest(tmp_path):
    by_digest = load_principals(write(tmp_path, DOC))
    assert sorted(by_digest) == sorted(token_digest(t) for t in (SALES, BI, PLATFORM))
    sales = by_digest[token_digest(SALES)]
    assert sales == Principal(
        name="sales-team", publish=frozenset({"sales"}), invoke_all=True, emit_prefixes=("sales.",)
    )
    assert by_digest[token_digest(BI)] == Principal(
        name="bi-dashboard", invoke_names=frozenset({"sales-summary"}), invoke_owners=frozenset({"finance"})
    )
    assert by_digest[token_digest(PLATFORM)] == Principal(name="platform", admin=True)


def test_an_empty_principal_list_is_valid(tmp_path):
    assert load_principals(write(tmp_path, {"principals": []})) == {}


D = token_digest("t")


@pytest.mark.parametrize(
    "doc, message",
    [
        ([], "invalid at the top level: [] is not of type 'object'."),
        ({}, "invalid at the top level: 'principals' is a required property."),
        ({"principals": [], "users": []}, "invalid at the top level: Additional properties are not allowed ('users' was unexpected)."),
        ({"principals": {}}, "invalid at principals: {} is not of type 'array'."),
        ({"principals": [{"name": "a"}]}, "invalid at principals[0]: 'token_sha256' is a required property."),
        ({"principals": [{"name": "", "token_sha256": D}]}, "invalid at principals[0].name: '' should be non-empty (a principal's name is a non-empty string)."),
        ({"principals": [{"name": 3, "token_sha256": D}]}, "invalid at principals[0].name: 3 is not of type 'string' (a principal's name is a non-empty string)."),
        ({"principals": [{"name": "a", "token_sha256": "abc"}]}, "invalid at principals[0].token_sha256: 'abc' is not valid: the SHA-256 hex digest of the token, as `nbmesh token NAME` prints it."),
        ({"principals": [{"name": "a", "token_sha256": "g" * 64}]}, "invalid at principals[0].token_sha256: '" + "g" * 64 + "' is not valid"),
        ({"principals": [{"name": "a", "token_sha256": D, "admin": "yes"}]}, "invalid at principals[0].admin: 'yes' is not of type 'boolean' (admin is true or false)."),
        ({"principals": [{"name": "a", "token_sha256": D, "role": "x"}]}, "invalid at principals[0]: Additional properties are not allowed ('role' was unexpected)."),
        ({"principals": [{"name": "a", "token_sha256": D, "invoke": ["ok", "Sales"]}]}, "invalid at principals[0].invoke[1]: 'Sales' is not valid: an invoke entry is a product name, \"owner:X\" or \"*\"."),
        ({"principals": [{"name": "a", "token_sha256": D, "invoke": ["owner:"]}]}, "invalid at principals[0].invoke[0]: 'owner:' is not valid"),
        ({"principals": [{"name": "a", "token_sha256": D, "emit": ["sales.**"]}]}, "invalid at principals[0].emit[0]: 'sales.**' is not valid: an emit entry is a topic, \"prefix.*\" or \"*\"."),
        ({"principals": [{"name": "a", "token_sha256": D, "emit": ["sales*"]}]}, "invalid at principals[0].emit[0]: 'sales*' is not valid"),
        ({"principals": [{"name": "a", "token_sha256": D, "publish": [" sales"]}]}, "invalid at principals[0].publish[0]: ' sales' is not valid: publish lists owners, as in metadata.nbmesh.owner."),
        ({"principals": [{"name": "a", "token_sha256": D, "publish": "sales"}]}, "invalid at principals[0].publish: 'sales' is not of type 'array'"),
        (
            {"principals": [{"name": "a", "token_sha256": D}, {"name": "a", "token_sha256": token_digest("u")}]},
            "names principal 'a' twice (principals[1]).",
        ),
        (
            {"principals": [{"name": "a", "token_sha256": D}, {"name": "b", "token_sha256": D.upper()}]},
            "gives principals[1] ('b') the same token_sha256 as 'a': each principal needs a token of its own.",
        ),
    ],
)
def test_an_invalid_file_is_one_clear_message_naming_the_file_and_the_place(tmp_path, doc, message):
    path = write(tmp_path, doc)
    with pytest.raises(InvalidConfig) as info:
        load_principals(path)
    assert info.value.message.startswith(f"The access file {path} ")
    assert message in info.value.message


@pytest.mark.parametrize("field, value", [("token_sha256", D + "\n"), ("invoke", ["sales\n"])])
def test_a_value_with_a_trailing_newline_is_invalid(tmp_path, field, value):
    entry = {"name": "a", "token_sha256": D, field: value}
    with pytest.raises(InvalidConfig):
        load_principals(write(tmp_path, {"principals": [entry]}))


def test_a_file_that_is_not_json_is_named(tmp_path):
    path = write(tmp_path, "{principals: []}")
    with pytest.raises(InvalidConfig, match="is not valid JSON: Expecting property name"):
        load_principals(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InvalidConfig) as info:
        load_principals(tmp_path / "nope.json")
    assert info.value.message == f"Cannot read the access file {tmp_path / 'nope.json'}: No such file or directory."


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "access.json"
    path.write_bytes(b'{"principals": [], "x": "\xff"}')
    with pytest.raises(InvalidConfig, match=f"Cannot read the access file {path}"):
        load_principals(path)


# configure and identify -------------------------------------------------------------------------------
def test_no_token_and_no_file_is_the_open_default():
    assert Access.configure(None, None) is None
    assert Access.configure("", None) is None
    assert OPEN.admin is True


def test_a_single_token_is_an_admin():
    access = Access.configure("secret", None)
    assert access.by_digest == {token_digest("secret"): Principal(name="--token", admin=True)}


def test_a_token_and_a_file_together(tmp_path):
    access = Access.configure("secret", write(tmp_path, DOC))
    assert len(access.by_digest) == 4
    assert access.identify(b"Bearer secret").name == "--token"
    assert access.identify(f"Bearer {SALES}".encode()).name == "sales-team"


@pytest.fixture
def access(tmp_path) -> Access:
    return Access.configure(None, write(tmp_path, DOC))


@pytest.mark.parametrize(
    "header, name",
    [
        (f"Bearer {SALES}", "sales-team"),
        (f"bearer {SALES}", "sales-team"),
        (f"BEARER {BI}", "bi-dashboard"),  # a digest written in upper case is found too
        (f"Bearer {PLATFORM}  ", "platform"),
        (f"Bearer   {PLATFORM}", "platform"),
    ],
)
def test_a_bearer_token_is_identified_by_its_digest(access, header, name):
    assert access.identify(header.encode()).name == name


@pytest.mark.parametrize(
    "header",
    [b"", b"Bearer", b"Bearer ", b"Bearer wrong", f"Basic {SALES}".encode(), SALES.encode(), f"Bearer {SALES}x".encode(),
     f"Bearer {token_digest(SALES)}".encode(), f"Token {SALES}".encode()],
)
def test_anything_else_identifies_nobody(access, header):
    assert access.identify(header) is None


def test_token_digest_is_the_sha256_hex_of_the_token():
    assert token_digest("abc") == hashlib.sha256(b"abc").hexdigest()
    assert token_digest(b"abc") == token_digest("abc")
    assert token_digest("é") == hashlib.sha256("é".encode()).hexdigest()


def test_a_new_principal_holds_only_the_digest_of_its_token(tmp_path):
    token, entry = new_principal("team-x")
    assert len(token) >= 40 and token not in json.dumps(entry)
    assert entry == {"name": "team-x", "token_sha256": token_digest(token), "publish": [], "invoke": [], "emit": []}
    access = Access.configure(None, write(tmp_path, {"principals": [entry]}))
    who = access.identify(f"Bearer {token}".encode())
    assert who == Principal(name="team-x")
    assert new_principal("team-x")[0] != token


# rights -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entry, name, owner, allowed",
    [
        ({"invoke": ["*"]}, "anything", "anyone", True),
        ({"invoke": ["*"]}, "unpublished", None, True),
        ({"invoke": ["sales-summary"]}, "sales-summary", "finance", True),
        ({"invoke": ["sales-summary"]}, "sales-summary", None, True),
        ({"invoke": ["sales-summary"]}, "sales-summary-2", "finance", False),
        ({"invoke": ["sales-summary"]}, "sales", "finance", False),
        ({"invoke": ["owner:finance"]}, "ledger", "finance", True),
        ({"invoke": ["owner:finance"]}, "ledger", "finance-eu", False),
        ({"invoke": ["owner:finance"]}, "ledger", "sales", False),
        ({"invoke": ["owner:finance"]}, "ledger", None, False),  # not published: no owner to match
        ({"invoke": ["owner:finance"]}, "finance", None, False),
        ({"publish": ["sales"]}, "forecast", "sales", True),  # a publisher reads its own domain
        ({"publish": ["sales"]}, "forecast", "finance", False),
        ({"publish": ["sales"]}, "forecast", None, False),
        ({"emit": ["*"]}, "forecast", "sales", False),  # emitting is no right to read
        ({}, "forecast", "sales", False),
        ({"admin": True}, "forecast", None, True),
    ],
)
def test_read_and_invoke_rights(entry, name, owner, allowed):
    p = principal(**entry)
    assert p.may_read(name, owner) is allowed
    if allowed:
        p.check_read(name, owner)
    else:
        with pytest.raises(Forbidden, match=f"Principal 'p' has no right to invoke or read product '{name}'."):
            p.check_read(name, owner)


@pytest.mark.parametrize(
    "entry, owner, allowed",
    [
        ({"publish": ["sales"]}, "sales", True),
        ({"publish": ["sales", "finance"]}, "finance", True),
        ({"publish": ["sales"]}, "sales-eu", False),
        ({"publish": ["sales"]}, "Sales", False),
        ({"publish": ["sales"]}, None, False),
        ({"publish": ["sales"]}, "", False),
        ({"invoke": ["*"], "emit": ["*"]}, "sales", False),
        ({"invoke": ["owner:sales"]}, "sales", False),
        ({"admin": True}, "anyone", True),
        ({"admin": True}, None, True),
    ],
)
def test_publish_rights(entry, owner, allowed):
    assert principal(**entry).may_publish(owner) is allowed


def test_a_refused_publish_says_which_owners_the_principal_may_publish():
    p = principal(publish=["sales", "finance"])
    with pytest.raises(Forbidden) as info:
        p.check_publish("ledger", "hr", new=True)
    assert info.value.message == (
        "Principal 'p' may not publish product 'ledger': its notebook names owner 'hr', "
        "and the owners it may publish are: finance, sales."
    )
    with pytest.raises(Forbidden) as info:
        principal().check_publish("ledger", None, new=True)
    assert "its notebook names no owner (metadata.nbmesh.owner), and the owners it may publish are: none." in info.value.message
    with pytest.raises(Forbidden) as info:
        p.check_publish("ledger", "hr")
    assert info.value.message == (
        "Principal 'p' may not change product 'ledger': it is not a product of an owner "
        "it may publish (owners it may publish: finance, sales)."
    )
    p.check_publish("ledger", "sales", new=True)  # allowed: no exception


@pytest.mark.parametrize(
    "emit, topic, allowed",
    [
        (["*"], "anything.at.all", True),
        (["orders.updated"], "orders.updated", True),
        (["orders.updated"], "orders.updated.eu", False),
        (["orders.updated"], "orders", False),
        (["sales.*"], "sales.daily", True),
        (["sales.*"], "sales.eu.daily", True),
        (["sales.*"], "sales", False),  # the prefix keeps its dot
        (["sales.*"], "salesforce.sync", False),
        (["sales.*"], "sales-eu.daily", False),
        (["sales.*"], "product.sales.succeeded", False),
        (["sales.*", "hr.*"], "hr.joined", True),
        (["a.b.*"], "a.b.c", True),
        (["a.b.*"], "a.bc", False),
        ([], "sales.daily", False),
    ],
)
def test_emit_rights(emit, topic, allowed):
    p = principal(emit=emit)
    assert p.may_emit(topic) is allowed
    if allowed:
        p.check_emit(topic)
    else:
        with pytest.raises(Forbidden, match=f"Principal 'p' has no right to publish events on topic '{topic}'."):
            p.check_emit(topic)


def test_an_admin_may_do_everything():
    admin = principal(admin=True)
    assert admin.may_emit("x") and admin.may_read("x", None) and admin.may_publish(None)


def test_the_open_default_may_do_everything():
    assert OPEN.may_emit("x") and OPEN.may_read("x", None) and OPEN.may_publish("anyone")
