"""`python -m elasticft_sandbox.apiserver [--port N] [--kubeconfig PATH]`: run the emulator alone."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ..logsetup import configure_logging
from .server import ApiServer, write_kubeconfig


async def serve(args: argparse.Namespace) -> None:
    server = ApiServer(logs_dir=args.logs_dir)
    await server.start(args.host, args.port)
    print(f"export KUBECONFIG={write_kubeconfig(server.url, args.kubeconfig)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", type=Path, default=Path("sandbox-kubeconfig"))
    parser.add_argument("--logs-dir", type=Path, default=None)
    args = parser.parse_args()
    configure_logging()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
