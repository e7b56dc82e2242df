"""Network trust rules shared by the runtime and the Jupyter server extension: which hosts are
this machine only, and which origins a runtime without a token lets a web page call it from."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..errors import InvalidConfig

# The names a browser puts in Host when it talks to this machine over loopback.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only; serving anywhere else needs a token."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def trusted_hosts(served_host: str) -> list[str]:
    """The Host names a runtime without a token answers to: loopback names, and the one it serves on."""
    host = f"[{served_host}]" if ":" in served_host else served_host
    return list(dict.fromkeys([*LOOPBACK_HOSTS, host.lower()]))


def parse_origin(text: str) -> str:
    """``http://localhost:8888`` as a browser sends it in ``Origin``; anything else is refused."""
    parts = urlsplit(text.strip())
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc
    except ValueError:
        valid = False
    if not valid or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidConfig(
            f"--allowed-origin {text!r} is not an origin: give scheme, host and port, like http://localhost:8888."
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"
