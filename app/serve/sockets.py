"""Listening sockets (one per worker, SO_REUSEPORT) and the open-file limit."""

from __future__ import annotations

import contextlib
import logging
import resource
import socket

log = logging.getLogger(__name__)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT, so each worker can have its own.

    With one socket per worker the kernel spreads new connections evenly between them;
    with one shared socket, whichever worker wakes first takes most of a burst.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def ports_free(host: str, ports: tuple[int, ...]) -> bool:
    """Whether each port (0: none) can be listened on; logs the reason for the first that cannot.

    Checked once before the workers start, so a port in use fails once with a clear message.
    """
    for port in ports:
        try:
            if port:
                listening_socket(host, port).close()
        except OSError as exc:
            log.error("Cannot listen on %s:%d: %s", host, port, exc.strerror)
            return False
    return True


def raise_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit: each connection needs one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.debug("Raised the open-file limit from %d to %d", soft, hard)
