"""Two sandboxes on one machine at the same time never reach each other's pods or Services."""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from ftj_testing import eventually
from kubernetes import client
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from elasticft_sandbox.addresses import AddressBlock, claim_address_block
from elasticft_sandbox.sandbox import Sandbox

# Both sandboxes run this same pod: it binds the same port on its pod IP and answers with its identity.
IDENTITY_SERVER = """
import http.server, os
class Identity(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ['IDENTITY'].encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer((os.environ['POD_IP'], 8080), Identity).serve_forever()
"""

SERVICE_CLIENT = """
import os, urllib.request
url = f"http://{os.environ['STORE_SERVICE_HOST']}:{os.environ['STORE_SERVICE_PORT']}/"
print(urllib.request.urlopen(url, timeout=10).read().decode())
"""


def pod(name: str, script: str, env: list[dict[str, Any]], **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c", script],
                                 "env": env, **container}]},
    }


def identity_server(identity: str) -> dict[str, Any]:
    env = [{"name": "IDENTITY", "value": identity},
           {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    return pod("server", IDENTITY_SERVER, env, ports=[{"name": "http", "containerPort": 8080}],
               readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1})


# The same Service in both: same name, same fixed port (like the rendezvous Service's 29400).
STORE_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "store"},
    "spec": {"selector": {"app": "server"}, "ports": [{"port": 29400, "targetPort": "http"}]},
}


@pytest.fixture
def two_sandboxes(tmp_path: Path) -> Iterator[list[Sandbox]]:
    """Two sandboxes started at the same moment, as a CI run and a developer's demo would be."""
    sandboxes = [Sandbox(tmp_path / name, restart_backoff_s=0.2, shutdown_grace_s=2) for name in ("a", "b")]
    with ExitStack() as stack:
        for sandbox in sandboxes:
            stack.callback(sandbox.stop)
        with ThreadPoolExecutor(len(sandboxes)) as pool:
            list(pool.map(Sandbox.start, sandboxes))
        yield sandboxes


def is_ready(pod: Any) -> bool:
    return any(status.ready for status in pod.status.container_statuses or [])


def read_log(core: CoreV1Api, name: str) -> str:
    try:
        text: str = core.read_namespaced_pod_log(name, "default")
    except ApiException:
        return ""
    return text


def test_two_sandboxes_at_once_each_reach_only_their_own_pod_through_their_own_service(
    two_sandboxes: list[Sandbox],
) -> None:
    identities = {"a": "served by sandbox a", "b": "served by sandbox b"}
    clients: dict[str, CoreV1Api] = {}
    cluster_ips: dict[str, str] = {}
    with ExitStack() as stack:
        for name, sandbox in zip(identities, two_sandboxes, strict=True):
            api_client = stack.enter_context(client.ApiClient(client.Configuration(host=sandbox.url)))
            core = clients[name] = CoreV1Api(api_client)
            cluster_ips[name] = core.create_namespaced_service("default", STORE_SERVICE).spec.cluster_ip
            core.create_namespaced_pod("default", identity_server(identities[name]))

        for name, core in clients.items():
            # Readiness is probed on the sandbox's own pod: both servers bind port 8080 and both come up.
            eventually(lambda core=core: is_ready(core.read_namespaced_pod("server", "default")),
                       timeout_s=30, what=f"server of sandbox {name} ready")
        servers = {name: core.read_namespaced_pod("server", "default") for name, core in clients.items()}
        assert servers["a"].status.pod_ip != servers["b"].status.pod_ip
        assert cluster_ips["a"] != cluster_ips["b"]
        for name, sandbox in zip(identities, two_sandboxes, strict=True):
            assert servers[name].status.phase == "Running", f"sandbox {name}'s server stopped: address in use?"
            assert servers[name].status.container_statuses[0].restart_count == 0
            assert ipaddress.ip_address(servers[name].status.pod_ip) in sandbox.addresses.pods
            assert ipaddress.ip_address(servers[name].status.host_ip) in sandbox.addresses.nodes
            assert ipaddress.ip_address(cluster_ips[name]) in sandbox.addresses.services

        for name in identities:
            # From the host, through the Service's cluster IP and the sandbox's proxy ...
            with urllib.request.urlopen(f"http://{cluster_ips[name]}:29400/", timeout=10) as response:
                assert response.read().decode() == identities[name]
            # ... and from a pod of the same sandbox, through the Service variables its kubelet injects.
            clients[name].create_namespaced_pod("default", pod("client", SERVICE_CLIENT, []))
        for name, core in clients.items():
            eventually(lambda core=core: core.read_namespaced_pod("client", "default").status.phase
                       in ("Succeeded", "Failed"), timeout_s=30, what=f"client of sandbox {name} done")
            assert core.read_namespaced_pod("client", "default").status.phase == "Succeeded", read_log(core, "client")
            assert read_log(core, "client").strip() == identities[name]


def test_a_claimed_block_is_not_handed_out_again_until_released(tmp_path: Path) -> None:
    first = claim_address_block(tmp_path)
    second = claim_address_block(tmp_path)
    try:
        assert first.block != second.block
        assert not set(first.block.networks) & set(second.block.networks)
        index = first.block.index
        first.release()
        third = claim_address_block(tmp_path)
        assert third.block.index == index, "a released block is the lowest free one again"
        third.release()
    finally:
        first.release()
        second.release()


def test_a_block_someone_listens_in_is_skipped_even_without_a_lock(tmp_path: Path) -> None:
    # What a killed sandbox leaves behind: a pod still listening on its address, and no lock held.
    probe = claim_address_block(tmp_path)
    taken = probe.block
    probe.release()
    with socket.socket() as orphan:
        orphan.bind((taken.pod_address(0), 0))
        orphan.listen()
        lease = claim_address_block(tmp_path)
        try:
            assert lease.block != taken
        finally:
            lease.release()


def test_blocks_do_not_overlap_and_pod_addresses_avoid_localhost() -> None:
    networks = [network for index in range(85) for network in AddressBlock(index).networks]
    assert len({str(network) for network in networks}) == len(networks)
    assert AddressBlock(0).pod_address(0) == "127.0.1.1"
    assert not AddressBlock(0).in_use_by("127.0.0.1"), "a server on localhost does not mark block 0 as used"
    assert AddressBlock(0).in_use_by("127.0.1.1") and AddressBlock(0).in_use_by("127.1.0.7")
    with pytest.raises(ValueError):
        AddressBlock(85)


def test_a_service_cannot_ask_for_a_cluster_ip_outside_its_sandbox_range(k8s: client.ApiClient) -> None:
    core = CoreV1Api(k8s)

    def service(name: str, cluster_ip: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"clusterIP": cluster_ip, "ports": [{"port": 29400}]}}

    with pytest.raises(ApiException) as refused:
        core.create_namespaced_service("default", service("elsewhere", str(AddressBlock(1).services[9])))
    assert refused.value.status == 422 and "not in the valid range" in refused.value.body
    inside = str(AddressBlock(0).services[9])
    assert core.create_namespaced_service("default", service("inside", inside)).spec.cluster_ip == inside
