"""Where the processes of one run meet when it spans nodes (``sigx train --nnodes``, an ablation cell across
nodes): torch-free, so the CLI and the launchers can name a layout without loading torch."""

from __future__ import annotations

import socket
from typing import NamedTuple


class Nodes(NamedTuple):
    """A run across nodes: how many, this one's rank, and where node 0 waits for the others."""

    count: int
    rank: int
    master_addr: str
    master_port: int


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, for a process group's rendezvous (another process may take it before the
    rendezvous binds it: rare, and that run stops with its error)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
