"""Who may do what: ServiceAccount tokens, RBAC and its 403s, access reviews, impersonation.

Judged by the official `kubernetes` client (with a token the server issued, over the TLS port that
in-cluster clients use) and the real kubectl (`auth can-i`, `auth whoami`, `--as`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from elasticft_sandbox.apiserver import ApiServerThread

ACCOUNT = "system:serviceaccount:team-a:reader"


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60, check=False)


def apply(manifest: dict[str, object]) -> None:
    result = subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(manifest), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def reader(kubeconfig: Path) -> None:
    """ServiceAccount team-a/reader may get and list pods, read pods/log, and get one ConfigMap by name."""
    assert kubectl("create", "namespace", "team-a").returncode == 0
    assert kubectl("create", "serviceaccount", "reader", "-n", "team-a").returncode == 0
    apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
           "metadata": {"name": "reader", "namespace": "team-a"},
           "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
                     {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                      "resourceNames": ["settings"]}]})
    apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "reader", "namespace": "team-a"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
           "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team-a"}]})


@pytest.fixture
def as_reader(apiserver_thread: ApiServerThread, reader: None, tmp_path: Path) -> Iterator[client.CoreV1Api]:
    """The official client as an in-cluster pod would be: the TLS endpoint, its CA, the account's token."""
    with client.ApiClient(client.Configuration(host=apiserver_thread.url)) as admin:
        token = client.CoreV1Api(admin).create_namespaced_service_account_token(
            "reader", "team-a", client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])))
    ca = tmp_path / "ca.crt"
    ca.write_bytes(apiserver_thread.ca_pem)
    configuration = client.Configuration(host=apiserver_thread.tls_url,
                                         api_key={"authorization": f"Bearer {token.status.token}"})
    configuration.ssl_ca_cert = str(ca)
    with client.ApiClient(configuration) as api_client:
        yield client.CoreV1Api(api_client)


def test_service_account_token_is_allowed_what_its_role_grants(as_reader: client.CoreV1Api) -> None:
    assert as_reader.list_namespaced_pod("team-a").items == []
    with pytest.raises(ApiException) as missing:
        as_reader.read_namespaced_config_map("settings", "team-a")
    assert missing.value.status == 404  # allowed by resourceNames, and simply not there


def test_denied_requests_are_403_with_the_api_servers_message(as_reader: client.CoreV1Api) -> None:
    cases = [
        (lambda: as_reader.list_namespaced_secret("team-a"),
         'secrets is forbidden: User "system:serviceaccount:team-a:reader" cannot list resource "secrets" in API '
         'group "" in the namespace "team-a"'),
        (lambda: as_reader.read_namespaced_config_map("other", "team-a"),
         'configmaps "other" is forbidden: User "system:serviceaccount:team-a:reader" cannot get resource '
         '"configmaps" in API group "" in the namespace "team-a"'),
        (lambda: as_reader.list_node(),
         'nodes is forbidden: User "system:serviceaccount:team-a:reader" cannot list resource "nodes" in API '
         'group "" at the cluster scope'),
        (lambda: as_reader.list_namespaced_pod("default"),
         'pods is forbidden: User "system:serviceaccount:team-a:reader" cannot list resource "pods" in API '
         'group "" in the namespace "default"'),
    ]
    for call, message in cases:
        with pytest.raises(ApiException) as denied:
            call()
        body = json.loads(denied.value.body)
        assert (denied.value.status, body["reason"], body["message"]) == (403, "Forbidden", message)


def test_unknown_bearer_token_is_401(apiserver_thread: ApiServerThread, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(apiserver_thread.ca_pem)
    configuration = client.Configuration(host=apiserver_thread.tls_url, api_key={"authorization": "Bearer forged"})
    configuration.ssl_ca_cert = str(ca)
    with client.ApiClient(configuration) as api_client, pytest.raises(ApiException) as refused:
        client.CoreV1Api(api_client).list_namespaced_pod("default")
    assert refused.value.status == 401


def test_kubectl_auth_can_i_answers_for_an_impersonated_service_account(reader: None) -> None:
    def can_i(*request: str) -> str:
        return kubectl("auth", "can-i", *request, f"--as={ACCOUNT}").stdout.strip()

    assert can_i("list", "pods", "-n", "team-a") == "yes"
    assert can_i("get", "pods", "--subresource=log", "-n", "team-a") == "yes"
    assert can_i("delete", "pods", "-n", "team-a") == "no"
    assert can_i("get", "configmaps/settings", "-n", "team-a") == "yes"
    assert can_i("get", "configmaps/other", "-n", "team-a") == "no"
    assert can_i("get", "secrets", "-n", "team-a") == "no"
    assert kubectl("auth", "can-i", "get", "secrets", "-n", "team-a").stdout.strip() == "yes"  # the admin


def test_kubectl_as_a_service_account_is_refused_what_it_may_not_do(reader: None) -> None:
    refused = kubectl("get", "secrets", "-n", "team-a", f"--as={ACCOUNT}")
    assert refused.returncode == 1
    assert ('secrets is forbidden: User "system:serviceaccount:team-a:reader" cannot list resource "secrets"'
            in refused.stderr)
    assert kubectl("get", "pods", "-n", "team-a", f"--as={ACCOUNT}").returncode == 0


def test_kubectl_auth_whoami_names_the_user(reader: None) -> None:
    admin = kubectl("auth", "whoami", "-o", "json")
    assert json.loads(admin.stdout)["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]
    impersonated = json.loads(kubectl("auth", "whoami", "-o", "json", f"--as={ACCOUNT}").stdout)
    info = impersonated["status"]["userInfo"]
    assert info["username"] == ACCOUNT
    assert "system:serviceaccounts:team-a" in info["groups"]


def test_kubectl_auth_can_i_list_shows_the_rules_of_the_account(reader: None) -> None:
    listed = kubectl("auth", "can-i", "--list", "-n", "team-a", f"--as={ACCOUNT}")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert ["pods/log", "[]", "[]", "[get", "list]"] in rows
    assert ["configmaps", "[]", "[settings]", "[get]"] in rows
    assert not [row for row in rows if row[0].startswith("secrets")]


def test_kubectl_create_role_and_rolebinding_grant_access(kubeconfig: Path) -> None:
    for command in (("create", "namespace", "team-b"), ("create", "serviceaccount", "bot", "-n", "team-b"),
                    ("create", "role", "events", "-n", "team-b", "--verb=create", "--resource=events"),
                    ("create", "rolebinding", "events", "-n", "team-b", "--role=events",
                     "--serviceaccount=team-b:bot"),
                    ("create", "clusterrole", "nodes", "--verb=list", "--resource=nodes"),
                    ("create", "clusterrolebinding", "nodes", "--clusterrole=nodes", "--serviceaccount=team-b:bot")):
        created = kubectl(*command)
        assert created.returncode == 0, created.stderr
    bot = "--as=system:serviceaccount:team-b:bot"
    assert kubectl("auth", "can-i", "create", "events", "-n", "team-b", bot).stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "list", "nodes", bot).stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "create", "events", "-n", "default", bot).stdout.strip() == "no"


def test_exec_needs_create_on_pods_exec(reader: None) -> None:
    assert kubectl("auth", "can-i", "create", "pods", "--subresource=exec", "-n", "team-a",
                   f"--as={ACCOUNT}").stdout.strip() == "no"
    assert kubectl("run", "some-pod", "-n", "team-a", "--image=python:3.11", "--command", "--", "true").returncode == 0
    refused = kubectl("exec", "some-pod", "-n", "team-a", f"--as={ACCOUNT}", "--", "true")
    assert refused.returncode == 1
    assert 'cannot create resource "pods/exec" in API group "" in the namespace "team-a"' in refused.stderr
