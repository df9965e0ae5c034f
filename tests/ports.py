"""A free TCP port on 127.0.0.1 for a test's server, one no other process will take before the server binds it.

`bind(("127.0.0.1", 0))` hands out a port from the kernel's ephemeral range, the same range every outgoing
connection draws its local port from. Between the probe closing and a child server binding the port (a Prefect
server takes seconds to get there), a connection made elsewhere (to PostgreSQL, to another test's server) may take
it: CI once failed on "Port 45405 is already in use". Ports below the ephemeral range are never handed out that way,
so a port found free there stays free unless a test asks for it, and each pytest-xdist worker draws from its own
share of that range so two workers never pick the same one. Where there is no such share (an ephemeral range that
starts low, more workers than shares), the kernel's choice is taken, as before.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

LOWEST = 20000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
WORKERS = 8  # shares of the range: more than any -n this project runs with


def _below_ephemeral() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _worker_share() -> range:
    """This xdist worker's ports (gw0, gw1, …); the whole range when tests run in one process. Empty where the
    range below the ephemeral one is too small to share, or the worker has no share of its own."""
    top = _below_ephemeral()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return range(LOWEST, top)
    index = int(worker[2:])
    size = max(0, top - LOWEST) // WORKERS
    if index >= WORKERS:
        return range(0)
    return range(LOWEST + index * size, LOWEST + (index + 1) * size)


def free_port(taken: frozenset[int] = frozenset()) -> int:
    """A port nothing listens on; `taken`: ports already chosen for a server not yet started."""
    share = _worker_share()
    for port in random.sample(share, k=min(200, len(share))):
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # something listens there, or a closed connection still holds it
            return port
    return _kernel_port(taken)


def _kernel_port(taken: frozenset[int]) -> int:
    """The kernel's choice, from the ephemeral range (what this module avoids where it can): for a machine whose
    ephemeral range leaves too little below it, or a worker beyond the shares."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port
