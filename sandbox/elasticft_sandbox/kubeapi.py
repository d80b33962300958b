"""The sandbox controllers' one Kubernetes client: a thin asyncio client over HTTP and a shared informer.

The scheduler, kubelet, service proxy and pool driver talk to the API server exactly as their real
counterparts do (list, watch, bind, patch status, delete), so they work against the sandbox's emulator
and, in principle, any API server that accepts unauthenticated HTTP.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

Obj = dict[str, Any]

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class ApiError(Exception):
    """An API request answered with a non-2xx status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def now_rfc3339() -> str:
    """The current time as Kubernetes writes timestamps (UTC, second precision)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_key(obj: Obj) -> tuple[str, str]:
    """(namespace, name) of an object; namespace is "" for cluster-scoped objects."""
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta["name"]


def pod_path(namespace: str, name: str, subresource: str = "") -> str:
    """API path of a pod or one of its subresources (status, binding, log)."""
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    return f"{path}/{subresource}" if subresource else path


def node_path(name: str, subresource: str = "") -> str:
    """API path of a node or its status subresource."""
    return f"/api/v1/nodes/{name}/{subresource}" if subresource else f"/api/v1/nodes/{name}"


class KubeApi:
    """Minimal asyncio Kubernetes REST client (JSON in, JSON out, `ApiError` on failure)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Watch lines carry whole objects; the default 64 KiB read buffer is too small for some.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), read_bufsize=2**22
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout_s: float = 30.0,
    ) -> Obj:
        """Send one request and return the decoded JSON answer."""
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        async with self.session.request(
            method,
            self.base_url + path,
            data=data,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            text = await response.text()
            if response.status >= 300:
                raise ApiError(response.status, text)
            answer: Obj = json.loads(text) if text else {}
            return answer

    async def get(self, path: str, params: dict[str, str] | None = None) -> Obj:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: Obj, content_type: str = STRATEGIC) -> Obj:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str, grace_period_s: int | None = None) -> Obj:
        options: Obj | None = None
        if grace_period_s is not None:
            options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace_period_s}
        return await self.request("DELETE", path, options)

    async def watch(self, path: str, resource_version: str, timeout_s: int = 300) -> AsyncIterator[Obj]:
        """Yield watch events (`{"type", "object"}`) from `resource_version` until the server ends."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_s),
        }
        async with self.session.get(
            self.base_url + path, params=params, timeout=aiohttp.ClientTimeout(total=timeout_s + 30)
        ) as response:
            if response.status >= 300:
                raise ApiError(response.status, await response.text())
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)


class Informer:
    """A list-then-watch cache of one resource, shared by the controllers that read it.

    Subscribers are plain callbacks run on every change (they only wake their controller up), so one
    watch serves the scheduler, the kubelet and the proxy.
    """

    def __init__(self, api: KubeApi, path: str, kind: str) -> None:
        self.api = api
        self.path = path
        self.kind = kind
        self.objects: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._subscribers: list[Callable[[], None]] = []

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.append(callback)

    def _notify(self) -> None:
        for callback in self._subscribers:
            callback()

    async def run(self) -> None:
        """Keep the cache in step with the server forever; relist after errors and 410 Gone."""
        while True:
            try:
                resource_version = await self._relist()
                while True:
                    resource_version = await self._watch(resource_version)
            except asyncio.CancelledError:
                raise
            except _Expired:
                log.debug("watch of %s expired, relisting", self.path)
            except (aiohttp.ClientError, ApiError, TimeoutError, json.JSONDecodeError) as error:
                log.debug("watch of %s failed (%s), relisting", self.path, error)
                await asyncio.sleep(0.5)

    async def _relist(self) -> str:
        listing = await self.api.get(self.path)
        items = listing.get("items", [])
        for item in items:  # list items carry no kind; events and owner checks need it
            item.setdefault("kind", self.kind)
            item.setdefault("apiVersion", "v1")
        self.objects = {object_key(item): item for item in items}
        self.synced.set()
        self._notify()
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, resource_version: str) -> str:
        async for event in self.api.watch(self.path, resource_version):
            kind, obj = event.get("type"), event.get("object", {})
            if kind == "ERROR":
                raise _Expired if obj.get("code") == 410 else ApiError(obj.get("code", 500), json.dumps(obj))
            resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self.objects.pop(object_key(obj), None)
            else:
                self.objects[object_key(obj)] = obj
            self._notify()
        return resource_version


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): the cache must be rebuilt from a list."""


class Controller(abc.ABC):
    """A reconcile loop woken by informer changes, with a periodic resync as a safety net."""

    resync_s = 2.0

    def __init__(self) -> None:
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    @abc.abstractmethod
    async def reconcile(self) -> None:
        """Bring the world one step closer to what the API says."""

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync_s)
            self._wake.clear()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s reconcile failed", type(self).__name__)
                await asyncio.sleep(0.5)


async def record_event(
    api: KubeApi, involved: Obj, reason: str, message: str, component: str, event_type: str = "Normal"
) -> None:
    """Write a core/v1 Event about `involved` (what `kubectl describe` shows); failures are only logged."""
    namespace = involved["metadata"].get("namespace") or "default"
    name = involved["metadata"]["name"]
    stamp = now_rfc3339()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved.get("kind", ""),
            "name": name,
            "namespace": involved["metadata"].get("namespace", ""),
            "uid": involved["metadata"].get("uid", ""),
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        await api.create(f"/api/v1/namespaces/{namespace}/events", event)
    except (ApiError, aiohttp.ClientError) as error:
        log.debug("event %s on %s not recorded: %s", reason, name, error)
