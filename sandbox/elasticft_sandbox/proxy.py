"""The sandbox's kube-proxy, in the old userspace mode: a TCP listener on each Service clusterIP:port.

Each connection goes to a Ready pod chosen round-robin among the Service's endpoints (see
`endpoints.py`), so a process that dials `$(X_SERVICE_HOST):port` or the clusterIP the operator wrote into
its env reaches the pod behind the Service, and the Service keeps its address when the pod is replaced.
Service IPs are loopback addresses from the sandbox's own block (127.{3i+1}.x.y, see `addresses.py`)
allocated by the API server, so no DNS is involved and another sandbox's Service on the same port is
a different listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from elasticft_sandbox.endpoints import proxied_ports, service_backends
from elasticft_sandbox.kubeapi import Controller, Informer

log = logging.getLogger(__name__)

COPY_CHUNK = 65536
CONNECT_TIMEOUT_S = 5.0

ListenKey = tuple[str, int]  # (clusterIP, port)
PortRef = tuple[str, str, int]  # (namespace, service, port)


class ServiceProxy(Controller):
    """Keeps one listener per Service port and forwards each accepted connection to an endpoint."""

    def __init__(self, services: Informer, pods: Informer) -> None:
        super().__init__()
        self.services = services
        self.pods = pods
        self._servers: dict[ListenKey, tuple[PortRef, asyncio.Server]] = {}
        self._turn = itertools.count()
        self._connections: set[asyncio.Task[None]] = set()
        services.subscribe(self.wake)

    async def reconcile(self) -> None:
        await self.services.synced.wait()
        wanted: dict[ListenKey, PortRef] = {}
        for (namespace, name), service in self.services.objects.items():
            for ip, port in proxied_ports(service):
                wanted[(ip, int(port["port"]))] = (namespace, name, int(port["port"]))
        for key, (ref, server) in list(self._servers.items()):
            if wanted.get(key) != ref:
                server.close()
                del self._servers[key]
        for key, ref in wanted.items():
            if key not in self._servers:
                await self._listen(key, ref)

    async def _listen(self, key: ListenKey, ref: PortRef) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._connections.add(task)
                task.add_done_callback(self._connections.discard)
            await self._forward(ref, reader, writer)

        try:
            server = await asyncio.start_server(accept, host=key[0], port=key[1], reuse_address=True)
        except OSError as error:
            log.warning("service %s/%s: cannot listen on %s:%s: %s", ref[0], ref[1], *key, error)
            return
        self._servers[key] = (ref, server)
        log.info("service %s/%s: proxying %s:%s", ref[0], ref[1], *key)

    def backends(self, ref: PortRef) -> list[tuple[str, int]]:
        namespace, name, port_number = ref
        service = self.services.objects.get((namespace, name))
        if service is None:
            return []
        ports = [p for _, p in proxied_ports(service) if int(p["port"]) == port_number]
        return service_backends(service, ports[0], self.pods.objects.values()) if ports else []

    async def _forward(
        self, ref: PortRef, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        backends = self.backends(ref)
        start = next(self._turn)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for offset in range(len(backends)):
            host, port = backends[(start + offset) % len(backends)]
            with contextlib.suppress(OSError, TimeoutError):
                upstream = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
                break
        if upstream is None:
            # No ready endpoint: close at once (kube-proxy's userspace mode had accepted the connection too).
            client.close()
            return
        server_reader, server = upstream
        await asyncio.gather(_pipe(client_reader, server), _pipe(server_reader, client))
        for writer in (client, server):
            writer.close()

    async def close(self) -> None:
        for _, server in self._servers.values():
            server.close()
        self._servers.clear()
        for task in list(self._connections):
            task.cancel()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close, so request/response protocols see the end of input."""
    try:
        while chunk := await reader.read(COPY_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
