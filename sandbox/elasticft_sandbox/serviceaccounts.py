"""Pod identity in the sandbox: every namespace's `default` ServiceAccount, and the token a pod runs with.

As on a real node, the kubelet asks the API for a token of the pod's ServiceAccount (TokenRequest) and
mounts it with the cluster CA and the namespace at `/var/run/secrets/kubernetes.io/serviceaccount`,
and sets `KUBERNETES_SERVICE_HOST`/`_PORT` to the API server's TLS endpoint, so that in-cluster
configuration (client-go, the Python client, kopf) works unchanged. Containers are host processes,
so the files live in a per-pod directory and the process gets them at the standard path through a
bind mount in a mount namespace of its own (`unshare`, which needs root or user namespaces).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from elasticft_sandbox.kubeapi import ApiError, Controller, Informer, KubeApi, Obj
from elasticft_sandbox.launch import LaunchError

TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_ACCOUNT = "default"
TOKEN_EXPIRATION_S = 3607  # what kubelets ask for
# A pod may be created right after its namespace, before the `default` account exists.
ACCOUNT_WAIT_S = 10.0
_BIND_AND_EXEC = 'mkdir -p "$2" && mount --bind "$1" "$2" && shift 2 && exec "$@"'


@dataclass(frozen=True)
class ApiEndpoint:
    """Where pods reach the API server (its TLS listener) and the CA that signed its certificate."""

    host: str
    port: int
    ca_pem: bytes

    def env(self) -> dict[str, str]:
        """The variables of the `kubernetes` Service that a kubelet gives every container."""
        address = f"tcp://{self.host}:{self.port}"
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(self.port), "KUBERNETES_PORT": address,
                f"KUBERNETES_PORT_{self.port}_TCP": address}


def automounts_token(pod: Obj) -> bool:
    return bool(pod["spec"].get("automountServiceAccountToken", True))


async def write_token(api: KubeApi, pod: Obj, endpoint: ApiEndpoint, directory: Path) -> None:
    """Request a token for the pod's ServiceAccount and write `token`, `ca.crt` and `namespace`."""
    namespace = pod["metadata"]["namespace"]
    account = pod["spec"].get("serviceAccountName") or DEFAULT_ACCOUNT
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": TOKEN_EXPIRATION_S,
                        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                                           "uid": pod["metadata"]["uid"]}}}
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    deadline = asyncio.get_running_loop().time() + ACCOUNT_WAIT_S
    while True:
        try:
            answer = await api.create(path, request)
            break
        except ApiError as error:
            if error.status != 404:
                raise
            if asyncio.get_running_loop().time() > deadline:
                raise LaunchError("CreateContainerConfigError",
                                  f'error looking up service account {namespace}/{account}: serviceaccount '
                                  f'"{account}" not found') from error
            await asyncio.sleep(0.5)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(answer["status"]["token"])
    (directory / "ca.crt").write_bytes(endpoint.ca_pem)
    (directory / "namespace").write_text(namespace)


def with_token_mount(argv: list[str], directory: Path) -> list[str]:
    """`argv` run with `directory` bind-mounted at the standard ServiceAccount path, in its own mount
    namespace (the host's stays as it is)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise LaunchError("CreateContainerConfigError",
                          f"cannot mount the ServiceAccount token at {TOKEN_MOUNT}: unshare(1) is not installed")
    user_namespace = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, *user_namespace, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _BIND_AND_EXEC,
            "sh", str(directory), TOKEN_MOUNT, *argv]


class DefaultServiceAccounts(Controller):
    """The ServiceAccount controller's one duty here: a `default` account in every namespace."""

    def __init__(self, api: KubeApi, namespaces: Informer, accounts: Informer) -> None:
        super().__init__()
        self.api = api
        self.namespaces = namespaces
        self.accounts = accounts
        namespaces.subscribe(self.wake)
        accounts.subscribe(self.wake)

    async def reconcile(self) -> None:
        await self.namespaces.synced.wait()
        await self.accounts.synced.wait()
        for namespace in list(self.namespaces.objects.values()):
            name = namespace["metadata"]["name"]
            if namespace["metadata"].get("deletionTimestamp") or (name, DEFAULT_ACCOUNT) in self.accounts.objects:
                continue
            body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_ACCOUNT}}
            try:
                created = await self.api.create(f"/api/v1/namespaces/{name}/serviceaccounts", body)
            except ApiError as error:
                if error.status not in (404, 409):  # namespace going away, or created meanwhile
                    raise
                continue
            self.accounts.objects[(name, DEFAULT_ACCOUNT)] = created
