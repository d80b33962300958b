"""`elasticft sandbox up|down`: run the sandbox cluster in the foreground, or stop the running one.

    elasticft sandbox up [--pools FILE] [--state-dir DIR]   # prints `export KUBECONFIG=...`
    elasticft sandbox down [--state-dir DIR]                # from another shell

`up` writes its pid to `{state_dir}/sandbox.pid`; `down` sends it SIGTERM, waits for it to stop its
pods, and kills anything a crashed `up` left behind (every pod records its processes).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from elasticft_sandbox.demo import add_run_arguments, run
from elasticft_sandbox.logsetup import configure_logging
from elasticft_sandbox.nodepools import DEFAULT_POOLS_FILE, POOLS_DIR
from elasticft_sandbox.processes import kill_recorded

PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
DOWN_TIMEOUT_S = 60.0


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "elasticft" / "sandbox"


def build_parser() -> argparse.ArgumentParser:
    """The `elasticft sandbox` parser; each sub-command sets `handler(args) -> int`."""
    parser = argparse.ArgumentParser(prog="elasticft sandbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up_parser = commands.add_parser("up", help="start the sandbox cluster and stay in the foreground")
    up_parser.add_argument(
        "--pools",
        type=Path,
        default=DEFAULT_POOLS_FILE,
        help=f"node pools YAML (default: {DEFAULT_POOLS_FILE.name}; others in {POOLS_DIR})",
    )
    up_parser.add_argument(
        "--restart-backoff-s",
        type=float,
        default=10.0,
        help="base of the kubelet's crash-loop back-off (Kubernetes: 10 s)",
    )
    up_parser.set_defaults(handler=up)

    down_parser = commands.add_parser("down", help="stop the sandbox started by `up`")
    down_parser.set_defaults(handler=down)

    run_parser = commands.add_parser("run", help="run a FineTuneJob end to end: sandbox, operator, kubectl apply")
    add_run_arguments(run_parser)
    run_parser.set_defaults(handler=run)

    for sub in (up_parser, down_parser):
        sub.add_argument(
            "--state-dir", type=Path, default=default_state_dir(), help="sandbox state directory"
        )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def running_pid(state_dir: Path) -> int | None:
    """The pid of the `up` process of this state directory, if it is still running.

    The pid file holds the pid and the process's start time, so a reused pid is not mistaken for it.
    """
    try:
        pid_text, started = (state_dir / PID_FILE).read_text().split()
        pid = int(pid_text)
        return pid if _is_running(pid) and psutil.Process(pid).create_time() == float(started) else None
    except (OSError, ValueError, psutil.Error):
        return None


def _is_running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def up(args: argparse.Namespace) -> int:
    from elasticft_sandbox.sandbox import Sandbox  # the API server and aiohttp only when needed

    state_dir: Path = args.state_dir.resolve()
    pid = running_pid(state_dir)
    if pid is not None:
        print(f"elasticft sandbox: already running (pid {pid}); `elasticft sandbox down`", file=sys.stderr)
        return 1
    state_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(state_dir / LOG_FILE)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sandbox = Sandbox(state_dir, args.pools, restart_backoff_s=args.restart_backoff_s)
    sandbox.start()
    pid_file = state_dir / PID_FILE
    try:
        pid_file.write_text(f"{os.getpid()} {psutil.Process().create_time()}")
        print(f"export KUBECONFIG={sandbox.kubeconfig}", flush=True)
        print(
            f"# sandbox API at {sandbox.url}, state in {state_dir}, {sandbox.addresses.describe()}; "
            "stop: Ctrl-C or `elasticft sandbox down`",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    finally:
        sandbox.stop()
        pid_file.unlink(missing_ok=True)
    return 0


def down(args: argparse.Namespace) -> int:
    configure_logging()
    state_dir: Path = args.state_dir.resolve()
    pid = running_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while _is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_running(pid):
            os.kill(pid, signal.SIGKILL)
    strays = kill_recorded(sorted(state_dir.glob("pods/*/processes.json")))
    (state_dir / PID_FILE).unlink(missing_ok=True)
    if pid is None and not strays:
        print(f"elasticft sandbox: nothing running in {state_dir}")
    else:
        print(f"elasticft sandbox: stopped{f' ({strays} stray processes killed)' if strays else ''}")
    return 0
