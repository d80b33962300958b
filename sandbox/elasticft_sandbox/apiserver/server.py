"""Running the emulator: `ApiServer` on an event loop, `ApiServerThread` in a background thread, and
the kubeconfig that points kubectl, kopf and the `kubernetes` client at it."""

from __future__ import annotations

import asyncio
import threading
from ipaddress import IPv4Network
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from .resources import Registry
from .routes import Routes
from .store import DEFAULT_HISTORY, Store
from .strategies import DEFAULT_SERVICE_NETWORK
from .streams import NodeAgent
from .tls import ServingCertificate, issue

INITIAL_NAMESPACES = ("default", "kube-system")
CONTEXT_NAME = "elasticft-sandbox"


class ApiServer:
    """An in-memory Kubernetes API server: plain HTTP at `url` (no credentials: the cluster admin) and
    HTTPS at `tls_url` (what in-cluster clients reach, with ServiceAccount tokens; CA in `certificate`)."""

    def __init__(self, logs_dir: Path | None = None, *, bookmark_interval_s: float = 5.0,
                 history: int = DEFAULT_HISTORY, service_network: IPv4Network = DEFAULT_SERVICE_NETWORK) -> None:
        self.logs_dir = logs_dir
        self.store = Store(Registry(), history, service_network)
        namespaces = self.store.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        for name in INITIAL_NAMESPACES:
            self.store.create(namespaces, "", {"metadata": {"name": name}})
        self._routes = Routes(self.store, logs_dir, bookmark_interval_s)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.tls_url = ""
        self.certificate: ServingCertificate | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 = any free port) and on a free TLS port; set `url` and `tls_url`."""
        self._runner = web.AppRunner(self._routes.application(), access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        self.url = f"http://{host}:{await self._listen(host, port)}"
        self.certificate = issue(host)
        self.tls_url = f"https://{host}:{await self._listen(host, 0, self.certificate)}"

    async def _listen(self, host: str, port: int, certificate: ServingCertificate | None = None) -> int:
        assert self._runner is not None
        site = web.TCPSite(self._runner, host, port,
                           ssl_context=certificate.server_context() if certificate else None)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        bound_port: int = server.sockets[0].getsockname()[1]
        return bound_port

    def attach_node_agent(self, agent: NodeAgent) -> None:
        """Let `pods/exec` run commands through this kubelet."""
        self._routes.node_agent = agent

    async def stop(self) -> None:
        """Close open watches and log streams, then stop listening."""
        self._routes.stop_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ApiServerThread:
    """Context manager running an `ApiServer` on its own event loop in a daemon thread."""

    def __init__(self, logs_dir: Path | None = None, host: str = "127.0.0.1", port: int = 0,
                 **server_options: Any) -> None:
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="elasticft-apiserver", daemon=True)
        self._server_options = dict(server_options, logs_dir=logs_dir)
        self.server: ApiServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "the API server is not running"
        return self.server.url

    @property
    def tls_url(self) -> str:
        assert self.server is not None, "the API server is not running"
        return self.server.tls_url

    def attach_node_agent(self, agent: NodeAgent) -> None:
        assert self.server is not None, "the API server is not running"
        self.server.attach_node_agent(agent)

    @property
    def ca_pem(self) -> bytes:
        assert self.server is not None and self.server.certificate is not None, "the API server is not running"
        return self.server.certificate.ca_pem

    def __enter__(self) -> ApiServerThread:
        self._thread.start()

        async def start() -> ApiServer:
            server = ApiServer(**self._server_options)
            await server.start(self._host, self._port)
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
            asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


async def _cancel_other_tasks() -> None:
    """Finish what is left on the loop (e.g. timers of graceful deletions) before it closes."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def write_kubeconfig(url: str, path: Path, namespace: str = "default") -> Path:
    """Write a kubeconfig whose current context `elasticft-sandbox` reaches `url` over plain HTTP."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT_NAME, "user": {}}],
        "contexts": [{"name": CONTEXT_NAME,
                      "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
