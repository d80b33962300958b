"""`pods/exec` and `pods/attach` over WebSockets, the channel protocol kubectl speaks (`v5.channel.k8s.io`,
`v4.channel.k8s.io`).

Every binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final Status, 4 terminal
resize (`{"Width": W, "Height": H}`), and in v5 255 closes the channel its next byte names (kubectl
closes stdin that way). The command runs where the pod's container runs: the emulator asks the node
agent (the sandbox kubelet) for the container's process environment, working directory and mounts, and
starts the command there, under a pseudo-terminal for `-t`. An attach streams what the container
writes from then on (its stdin is not open: the sandbox starts containers with stdin closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import struct
import termios
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from .errors import ApiError

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_CHUNK = 65536


@dataclass(frozen=True)
class ExecSpec:
    """How to start a command inside a running container: argv (mounts applied), env and cwd."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


class ContainerNotRunning(Exception):
    """The container asked for does not run (yet, or any more); answered as 400 like a real kubelet."""


class NodeAgent(Protocol):
    """What a kubelet tells the API server about its running containers."""

    def exec_spec(self, namespace: str, pod: str, container: str, command: Sequence[str]) -> ExecSpec:
        """The command as the container would run it; `ContainerNotRunning` if it cannot be run now."""

    def attach_stdin(self, namespace: str, pod: str, container: str) -> Path | None:
        """The named pipe the container reads as stdin (None: it has none); `ContainerNotRunning` if it
        does not run."""


def _status(exit_code: int) -> bytes:
    if exit_code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                       "message": f"command terminated with non-zero exit code: exit status {exit_code}",
                       "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}).encode()


def _resize(fd: int, payload: bytes) -> None:
    with contextlib.suppress(ValueError, OSError):
        size: dict[str, Any] = json.loads(payload)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0))


def _take_terminal() -> None:
    """In the child, after setsid: make the pseudo-terminal on stdin the session's controlling terminal,
    so that shells get job control as under `kubectl exec -it` on a real node."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _Session:
    """One exec: the process, its streams, and the WebSocket they are multiplexed on."""

    def __init__(self, ws: web.WebSocketResponse, spec: ExecSpec, tty: bool, stdin: bool) -> None:
        self.ws, self.spec, self.tty, self.use_stdin = ws, spec, tty, stdin
        self.process: asyncio.subprocess.Process | None = None
        self.terminal: int | None = None

    async def start(self) -> None:
        options: dict[str, Any] = {"cwd": self.spec.cwd, "env": self.spec.env, "start_new_session": True}
        if self.tty:
            self.terminal, child = pty.openpty()
            self.process = await asyncio.create_subprocess_exec(*self.spec.argv, stdin=child, stdout=child,
                                                                stderr=child, preexec_fn=_take_terminal, **options)
            os.close(child)
        else:
            stdin = asyncio.subprocess.PIPE if self.use_stdin else asyncio.subprocess.DEVNULL
            self.process = await asyncio.create_subprocess_exec(*self.spec.argv, stdin=stdin,
                                                                stdout=asyncio.subprocess.PIPE,
                                                                stderr=asyncio.subprocess.PIPE, **options)

    async def _send(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.send_bytes(bytes([channel]) + data)

    async def _pump(self, reader: asyncio.StreamReader, channel: int) -> None:
        while chunk := await reader.read(_CHUNK):
            await self._send(channel, chunk)

    async def _pump_terminal(self) -> None:
        assert self.terminal is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await loop.run_in_executor(None, os.read, self.terminal, _CHUNK)
            except OSError:  # EIO: the process side of the terminal is closed
                return
            if not chunk:
                return
            await self._send(STDOUT, chunk)

    async def _feed(self) -> None:
        """Client → process: stdin bytes, resizes, and the close of stdin."""
        assert self.process is not None
        async for message in self.ws:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            if channel == STDIN and payload:
                if self.terminal is not None:
                    os.write(self.terminal, payload)
                elif self.process.stdin is not None:
                    self.process.stdin.write(payload)
                    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                        await self.process.stdin.drain()
            elif channel == RESIZE and self.terminal is not None:
                _resize(self.terminal, payload)
            elif channel == CLOSE and payload[:1] == bytes([STDIN]) and self.process.stdin is not None:
                self.process.stdin.close()

    async def run(self) -> int:
        assert self.process is not None
        if self.terminal is not None:
            pumps = [asyncio.create_task(self._pump_terminal())]
        else:
            assert self.process.stdout is not None and self.process.stderr is not None
            pumps = [asyncio.create_task(self._pump(self.process.stdout, STDOUT)),
                     asyncio.create_task(self._pump(self.process.stderr, STDERR))]
        feeder = asyncio.create_task(self._feed())
        try:
            exit_code = await self.process.wait()
            await asyncio.wait(pumps, timeout=5)
        finally:
            feeder.cancel()
            for pump in pumps:
                pump.cancel()
            if self.process.returncode is None:
                self.process.kill()
            if self.terminal is not None:
                os.close(self.terminal)
        return exit_code if exit_code >= 0 else 128 - exit_code


async def serve_exec(request: web.Request, spec: ExecSpec) -> web.WebSocketResponse:
    """Run `spec` for a WebSocket exec request and stream it until the command exits."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(400, "Upgrade request required: exec is served over WebSockets (v5.channel.k8s.io)")
    ws = web.WebSocketResponse(protocols=PROTOCOLS)
    await ws.prepare(request)
    session = _Session(ws, spec, request.query.get("tty") in ("true", "1"), request.query.get("stdin") in ("true", "1"))
    try:
        await session.start()
    except OSError as error:
        await ws.send_bytes(bytes([ERROR]) + json.dumps({"metadata": {}, "status": "Failure", "message": str(error),
                                                         "reason": "InternalError"}).encode())
        await ws.close()
        return ws
    exit_code = await session.run()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await ws.send_bytes(bytes([ERROR]) + _status(exit_code))
        await ws.close()
    return ws


async def _feed_pipe(ws: web.WebSocketResponse, pipe: Path) -> None:
    """Client → container: what arrives on the stdin channel, written to the container's stdin pipe."""
    descriptor = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)  # the container holds the reading end open
    try:
        async for message in ws:
            if message.type != WSMsgType.BINARY or message.data[:1] != bytes([STDIN]):
                continue
            payload = message.data[1:]
            while payload:
                try:
                    payload = payload[os.write(descriptor, payload):]
                except BlockingIOError:  # the pipe is full: the container is not reading yet
                    await asyncio.sleep(0.05)
    finally:
        os.close(descriptor)


async def serve_attach(request: web.Request, log_path: Path, running: Callable[[], bool],
                       stopping: asyncio.Event, poll_s: float = 0.1,
                       stdin_pipe: Path | None = None) -> web.WebSocketResponse:
    """Stream the container's output from now on to an attach request, until the container stops;
    with `stdin_pipe`, what the client types goes to the container's stdin."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(400, "Upgrade request required: attach is served over WebSockets (v5.channel.k8s.io)")
    ws = web.WebSocketResponse(protocols=PROTOCOLS)
    await ws.prepare(request)
    feeder = asyncio.create_task(_feed_pipe(ws, stdin_pipe)) if stdin_pipe is not None else None
    try:
        await _stream_log(ws, log_path, running, stopping, poll_s)
    finally:
        if feeder is not None:
            feeder.cancel()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await ws.send_bytes(bytes([ERROR]) + _status(0))
        await ws.close()
    return ws


async def _stream_log(ws: web.WebSocketResponse, log_path: Path, running: Callable[[], bool],
                      stopping: asyncio.Event, poll_s: float) -> None:
    offset = log_path.stat().st_size if log_path.exists() else 0
    while not ws.closed and not stopping.is_set():
        alive = running()
        size = log_path.stat().st_size if log_path.exists() else 0
        if size < offset:  # the container restarted: a new log
            offset = 0
        if size > offset:
            with log_path.open("rb") as log:
                log.seek(offset)
                chunk = log.read(size - offset)
            offset = size
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.send_bytes(bytes([STDOUT]) + chunk)
        if not alive:
            break
        await asyncio.sleep(poll_s)
