"""Who may do what (docs/security.md, "Who may do what"): the principals of ``--access FILE``, their tokens' digests
and their rights.

The file is read and checked once, when ``nbmesh serve`` starts; a bad file stops the start with
one line naming what is wrong and where. A request then costs one SHA-256 of its token, one dict
lookup and a few set lookups against owners the in-memory catalog already holds: no disk read,
no notebook parsing. Only digests are kept, so the file holds no secret.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..errors import Forbidden, InvalidConfig
from ..model.product import NAME as _PRODUCT
from ..triggers.rules import TOPIC as _TOPIC
# jsonschema applies patterns with Python's re.search, where "$" also matches before a trailing
# newline: "(?!\n)" closes that hole (a digest or right ending in "\n" would never match a request).
END = r"$(?!\n)"


def _rights(what: str, pattern: str) -> dict[str, Any]:
    return {"type": "array", "description": what, "items": {"type": "string", "pattern": pattern, "description": what}}


ACCESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["principals"],
    "additionalProperties": False,
    "properties": {
        "principals": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "token_sha256"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "description": "a principal's name is a non-empty string"},
                    "token_sha256": {
                        "type": "string",
                        "pattern": "^[0-9a-fA-F]{64}" + END,
                        "description": "the SHA-256 hex digest of the token, as `nbmesh token NAME` prints it",
                    },
                    "publish": _rights("publish lists owners, as in metadata.nbmesh.owner", r"^\S(.*\S)?" + END),
                    "invoke": _rights(
                        'an invoke entry is a product name, "owner:X" or "*"', rf"^(\*|owner:\S(.*\S)?|{_PRODUCT})" + END
                    ),
                    "emit": _rights('an emit entry is a topic, "prefix.*" or "*"', rf"^(\*|{_TOPIC}|{_TOPIC}\.\*)" + END),
                    "admin": {"type": "boolean", "description": "admin is true or false"},
                },
            },
        }
    },
}
_VALIDATOR = Draft202012Validator(ACCESS_SCHEMA)


@dataclass(frozen=True)
class Principal:
    """One caller and its rights, as sets ready for lookups."""

    name: str
    admin: bool = False
    publish: frozenset[str] = frozenset()
    invoke_names: frozenset[str] = frozenset()
    invoke_owners: frozenset[str] = frozenset()
    invoke_all: bool = False
    emit_topics: frozenset[str] = frozenset()
    emit_prefixes: tuple[str, ...] = ()
    emit_all: bool = False

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> "Principal":
        invoke, emit = entry.get("invoke", []), entry.get("emit", [])
        return cls(
            name=entry["name"],
            admin=entry.get("admin", False),
            publish=frozenset(entry.get("publish", [])),
            invoke_names=frozenset(i for i in invoke if i != "*" and not i.startswith("owner:")),
            invoke_owners=frozenset(i.removeprefix("owner:") for i in invoke if i.startswith("owner:")),
            invoke_all="*" in invoke,
            emit_topics=frozenset(e for e in emit if not e.endswith("*")),
            # "sales.*" matches topics that start with "sales.": keep the prefix with its dot.
            emit_prefixes=tuple(e[:-1] for e in emit if e.endswith(".*")),
            emit_all="*" in emit,
        )

    def may_publish(self, owner: str | None) -> bool:
        return self.admin or owner in self.publish

    def may_read(self, name: str, owner: str | None) -> bool:
        """Invoke the product and read it, its runs, results and notebooks.

        A publisher reads (and invokes) its own domain's products: a team tests what it publishes.
        ``owner`` is None for a product that is not published; only a right that names it covers it.
        """
        if self.admin or self.invoke_all or name in self.invoke_names:
            return True
        return owner is not None and (owner in self.invoke_owners or owner in self.publish)

    def may_emit(self, topic: str) -> bool:
        return self.admin or self.emit_all or topic in self.emit_topics or topic.startswith(self.emit_prefixes)

    def check_read(self, name: str, owner: str | None) -> None:
        if not self.may_read(name, owner):
            raise Forbidden(f"Principal {self.name!r} has no right to invoke or read product {name!r}.")

    def check_publish(self, name: str, owner: str | None, new: bool = False) -> None:
        """``owner`` is the product's current owner, or (``new``) the owner the notebook names."""
        if self.may_publish(owner):
            return
        mine = ", ".join(sorted(self.publish)) or "none"
        if new:
            named = f"names owner {owner!r}" if owner else "names no owner (metadata.nbmesh.owner)"
            raise Forbidden(
                f"Principal {self.name!r} may not publish product {name!r}: its notebook {named}, "
                f"and the owners it may publish are: {mine}."
            )
        raise Forbidden(
            f"Principal {self.name!r} may not change product {name!r}: it is not a product of an owner "
            f"it may publish (owners it may publish: {mine})."
        )

    def check_emit(self, topic: str) -> None:
        if not self.may_emit(topic):
            raise Forbidden(f"Principal {self.name!r} has no right to publish events on topic {topic!r}.")


# Who the caller is when the runtime runs without any token (loopback only): the operator.
OPEN = Principal(name="anonymous (no token configured)", admin=True)
PRINCIPAL = "nbmesh.principal"  # the ASGI scope key where the gate leaves the caller for the handlers


def token_digest(token: str | bytes) -> str:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).hexdigest()


@dataclass
class Access:
    """The known principals by their token's digest."""

    by_digest: dict[str, Principal] = field(default_factory=dict)

    @classmethod
    def configure(cls, token: str | None, path: str | Path | None) -> "Access | None":
        """From ``--token`` and ``--access``; None when neither is given (the open loopback default)."""
        if not token and not path:
            return None
        access = cls(load_principals(path) if path else {})
        if token:
            # --token stays what it always was: one principal that may do everything.
            access.by_digest[token_digest(token)] = Principal(name="--token", admin=True)
        return access

    def identify(self, authorization: bytes) -> Principal | None:
        """The principal an ``Authorization: Bearer <token>`` header names, if any.

        The lookup is keyed by the digest of the presented token: timing can tell only about that
        digest, never about a stored one, so no constant-time compare is needed.
        """
        scheme, _, token = authorization.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return None
        return self.by_digest.get(token_digest(token))


def load_principals(path: str | Path) -> dict[str, Principal]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfig(f"Cannot read the access file {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidConfig(f"The access file {path} is not valid JSON: {exc}.") from None
    error = best_match(_VALIDATOR.iter_errors(doc))
    if error is not None:
        hint = error.schema.get("description") if isinstance(error.schema, dict) else None
        message = error.message
        if hint and error.validator == "pattern":  # the rule in words, not the regular expression
            message = f"{error.instance!r} is not valid: {hint}"
        elif hint and error.validator in ("type", "minLength"):
            message = f"{message} ({hint})"
        raise InvalidConfig(f"The access file {path} is invalid at {_where(error.absolute_path)}: {message}.")
    by_digest: dict[str, Principal] = {}
    names: set[str] = set()
    for index, entry in enumerate(doc["principals"]):
        digest = entry["token_sha256"].lower()
        where = f"principals[{index}]"
        if entry["name"] in names:
            raise InvalidConfig(f"The access file {path} names principal {entry['name']!r} twice ({where}).")
        if digest in by_digest:
            raise InvalidConfig(
                f"The access file {path} gives {where} ({entry['name']!r}) the same token_sha256 as "
                f"{by_digest[digest].name!r}: each principal needs a token of its own."
            )
        names.add(entry["name"])
        by_digest[digest] = Principal.from_json(entry)
    return by_digest


def _where(path: Iterable[Any]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "the top level"


def new_principal(name: str) -> tuple[str, dict[str, Any]]:
    """A new random token and the access-file entry that holds only its digest, rights left empty."""
    token = secrets.token_urlsafe(32)
    return token, {"name": name, "token_sha256": token_digest(token), "publish": [], "invoke": [], "emit": []}
