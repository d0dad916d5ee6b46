"""The address of the statistics endpoint: ``run --stat-addr`` and ``top`` read it."""

from __future__ import annotations

from typing import final
from urllib.parse import urlsplit

import attrs

from ._exceptions import ConfigError

__all__ = ["DEFAULT_HOST", "StatAddress", "parse_stat_address"]

DEFAULT_HOST = "127.0.0.1"
"""The host when only a port is given: loopback, so that only this machine can read it."""


@final
@attrs.frozen
class StatAddress:
    """A host and a TCP port (0: any free port, for a server)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL of the statistics: ``http://HOST:PORT/stats``."""
        return f"http://{self}/stats"


def parse_stat_address(text: str, *, url: bool = False) -> StatAddress:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1); with
    ``url``, also ``http://HOST:PORT`` with an optional path ``/`` or ``/stats``.

    Raises :class:`ConfigError` naming the text and what was expected.
    """
    expected = "expected HOST:PORT, :PORT or PORT"
    if url:
        expected += ", or http://HOST:PORT"
    given = text.strip()
    if url and "://" in given:
        parts = urlsplit(given)
        if parts.scheme != "http":
            raise ConfigError(f"{text!r}: only http:// is served, got {parts.scheme}://")
        if parts.path not in ("", "/", "/stats") or parts.query or parts.fragment:
            raise ConfigError(f"{text!r}: the statistics are at /stats, got {parts.path!r}")
        given = parts.netloc  # its port, or its lack of one, is checked below
    if given.isdigit():
        host, port_text = "", given
    else:
        host, sep, port_text = given.rpartition(":")
        if not sep:
            raise ConfigError(f"{text!r}: no port ({expected})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{text!r}: write an IPv6 host in brackets, as [::1]:PORT")
    if any(c.isspace() or c in "/@[]" for c in host):
        raise ConfigError(f"{text!r}: {host!r} is not a host name ({expected})")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{text!r}: the port must be a number from 0 to 65535 ({expected})")
    port = int(port_text)
    if url and port == 0:
        raise ConfigError(f"{text!r}: port 0 means any free port; give the one the run logged")
    return StatAddress(host or DEFAULT_HOST, port)
