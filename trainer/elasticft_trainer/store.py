"""`python -m elasticft_trainer.store`: the job's standalone c10d rendezvous store.

A torch TCPStore server that outlives spot workers (it runs in the job's small on-demand rendezvous
pod); torchrun agents reach it through `--rdzv-endpoint` as clients. Keeping the store out of the
workers means losing any worker, including the first, never loses the rendezvous.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import torch.distributed as dist

from .logs import configure_logging

log = logging.getLogger("elasticft_trainer.store")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a TCPStore until SIGTERM or SIGINT; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m elasticft_trainer.store", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (the pod IP)")
    parser.add_argument("--port", type=int, default=29400, help="port to listen on")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging()

    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # TCPStore alone listens on every interface whatever host it is given, so two pods on one machine (two
    # sandboxes, or host networking) would fight over the port: listen on the given address ourselves and
    # hand the socket over. The socket object must let go of the fd (detach), or closing it would pull the
    # listener from under the store. Only the classic backend accepts a listening fd.
    listener = socket.create_server((args.host, args.port), backlog=1024)
    # multi_tenant: agents that probe the endpoint as a would-be server must find it taken, not crash it.
    store = dist.TCPStore(  # type: ignore[attr-defined]  # public, but torch's stubs do not re-export it
        args.host, args.port, is_master=True, wait_for_workers=False, multi_tenant=True,
        master_listen_fd=listener.detach(), use_libuv=False,
    )
    log.info("rendezvous store listening on %s:%d", args.host, store.port)
    stopped.wait()
    log.info("rendezvous store stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
