"""The whole sandbox in one object: API server, scheduler, kubelet, service proxy, workload controllers
(Deployments, ReplicaSets) and node pools.

    with Sandbox(tmp_path, pools_file) as sandbox:
        subprocess.run(["kubectl", "--kubeconfig", sandbox.kubeconfig, "get", "nodes"])
        sandbox.reclaim("spot-0", notice_s=2)

The controllers share one asyncio loop in a background thread; the API server runs in its own thread.
Each running sandbox holds its own loopback address block (`addresses.py`): pod IPs, Service cluster
IPs and node IPs no other live sandbox on the machine uses, so two sandboxes (a test run next to a demo,
pytest-xdist workers) never bind, proxy or probe each other's addresses. The API server's port is free
and chosen by the kernel.
State lives under `state_dir`: `kubeconfig`, `logs/` (container logs), `pods/` (emptyDirs, termination
logs), `volumes/` (PersistentVolumeClaims, kept across runs like disks).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from elasticft_sandbox.addresses import AddressBlock, AddressLease, claim_address_block
from elasticft_sandbox.apiserver import ApiServerThread, write_kubeconfig
from elasticft_sandbox.kubeapi import Informer, KubeApi
from elasticft_sandbox.kubelet import Kubelet
from elasticft_sandbox.nodepools import DEFAULT_POOLS_FILE, load_pools
from elasticft_sandbox.pooldriver import PoolDriver
from elasticft_sandbox.processes import kill_recorded
from elasticft_sandbox.proxy import ServiceProxy
from elasticft_sandbox.scheduler import Scheduler
from elasticft_sandbox.serviceaccounts import ApiEndpoint, DefaultServiceAccounts
from elasticft_sandbox.workloads import WorkloadController

log = logging.getLogger(__name__)

T = TypeVar("T")

START_TIMEOUT_S = 60.0


class Sandbox:
    """A running sandbox cluster; `stop()` (or leaving the `with` block) ends every process it started."""

    def __init__(
        self,
        state_dir: Path,
        pools_file: Path | None = None,
        *,
        restart_backoff_s: float = 10.0,
        shutdown_grace_s: float = 10.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.pools_file = pools_file or DEFAULT_POOLS_FILE
        self.restart_backoff_s = restart_backoff_s
        self.shutdown_grace_s = shutdown_grace_s
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.logs_dir = self.state_dir / "logs"
        self.url = ""
        self._lease: AddressLease | None = None
        self._apiserver: ApiServerThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._api: KubeApi | None = None
        self._driver: PoolDriver | None = None
        self._kubelet: Kubelet | None = None
        self._proxy: ServiceProxy | None = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Sandbox:
        """Start everything and return once the pools' nodes exist; on failure, undo what started."""
        config = load_pools(self.pools_file)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Logs and pod directories belong to the previous cluster's pods; volumes are disks and stay.
        # Processes a killed sandbox left behind go first, while their records still exist.
        kill_recorded(self.state_dir.glob("pods/*/processes.json"))
        for previous in (self.logs_dir, self.state_dir / "pods"):
            shutil.rmtree(previous, ignore_errors=True)
        self.logs_dir.mkdir()
        try:
            # After the left-over processes are gone, so that their listeners no longer mark a block as used.
            self._lease = claim_address_block()
            log.info("sandbox address block %d: %s", self.addresses.index, self.addresses.describe())
            self._apiserver = ApiServerThread(self.logs_dir, service_network=self.addresses.services)
            self._apiserver.__enter__()
            self.url = self._apiserver.url
            write_kubeconfig(self.url, self.kubeconfig)
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox", daemon=True)
            self._thread.start()
            self._call(self._start_controllers(config), START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def addresses(self) -> AddressBlock:
        """This sandbox's pod, Service and node networks (while it runs)."""
        if self._lease is None:
            raise RuntimeError("the sandbox is not running")
        return self._lease.block

    async def _start_controllers(self, config: Any) -> None:
        api = self._api = KubeApi(self.url)
        pods = Informer(api, "/api/v1/pods", "Pod")
        nodes = Informer(api, "/api/v1/nodes", "Node")
        services = Informer(api, "/api/v1/services", "Service")
        namespaces = Informer(api, "/api/v1/namespaces", "Namespace")
        accounts = Informer(api, "/api/v1/serviceaccounts", "ServiceAccount")
        deployments = Informer(api, "/apis/apps/v1/deployments", "Deployment")
        replicasets = Informer(api, "/apis/apps/v1/replicasets", "ReplicaSet")
        informers = (pods, nodes, services, namespaces, accounts, deployments, replicasets)
        for informer in informers:
            self._spawn(informer.run())
        for informer in informers:
            await informer.synced.wait()
        self._driver = PoolDriver(api, config, pods, nodes, self.addresses)
        await self._driver.start()
        self._kubelet = Kubelet(
            api, pods, nodes, services, self.state_dir, self.logs_dir, self.restart_backoff_s,
            addresses=self.addresses, api_endpoint=self._api_endpoint(),
        )
        assert self._apiserver is not None
        self._apiserver.attach_node_agent(self._kubelet)
        self._proxy = ServiceProxy(services, pods)
        workloads = WorkloadController(api, deployments, replicasets, pods)
        accounts_controller = DefaultServiceAccounts(api, namespaces, accounts)
        for controller in (Scheduler(api, pods, nodes), self._kubelet, self._proxy, workloads, accounts_controller):
            self._spawn(controller.run())
        self._spawn(self._driver.run())

    def _api_endpoint(self) -> ApiEndpoint:
        assert self._apiserver is not None
        address = urlsplit(self._apiserver.tls_url)
        assert address.hostname is not None and address.port is not None
        return ApiEndpoint(address.hostname, address.port, self._apiserver.ca_pem)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(coroutine))

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the sandbox is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def reclaim(self, node_name: str, notice_s: float | None = None) -> None:
        """Spot-reclaim a node: returns once the notice (taint, DisruptionTarget) is in the API."""
        if self._driver is None:
            raise RuntimeError("the sandbox is not running")
        self._call(self._driver.reclaim(node_name, notice_s), 30)

    def add_nodes(self, pool: str, count: int) -> list[str]:
        """Add `count` nodes to a pool; returns their names."""
        if self._driver is None:
            raise RuntimeError("the sandbox is not running")
        return self._call(self._driver.add_nodes(pool, count), 30)

    def stop(self) -> None:
        """Stop the pods' processes (SIGTERM, then SIGKILL after the shutdown grace), then everything else."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            try:
                self._call(self._stop_controllers(), self.shutdown_grace_s + 30)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
                self._loop.close()
        self._loop = self._thread = None
        if self._apiserver is not None:
            self._apiserver.__exit__(None, None, None)
            self._apiserver = None
        # Last: the block is free again only once nothing of this sandbox listens on it.
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    async def _stop_controllers(self) -> None:
        # Controllers first, so that nothing starts a pod or a reclaim while the pods are being stopped.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._driver is not None:
            await self._driver.stop()
        if self._kubelet is not None:
            await self._kubelet.shutdown(self.shutdown_grace_s)
        if self._proxy is not None:
            await self._proxy.close()
        if self._api is not None:
            await self._api.close()
