"""CRD `x-kubernetes-validations` (CEL) rules are enforced at create and update, as a real server does."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]

RULED_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "quotas.example.io"},
    "spec": {"group": "example.io", "scope": "Namespaced",
             "names": {"plural": "quotas", "singular": "quota", "kind": "Quota"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object",
                 "properties": {"spec": {
                     "type": "object",
                     "x-kubernetes-validations": [
                         {"rule": "self.used <= self.limit", "message": "used may not exceed limit"},
                         {"rule": "self.owner == oldSelf.owner", "message": "owner is immutable"},
                     ],
                     "properties": {"owner": {"type": "string"}, "limit": {"type": "integer"},
                                    "used": {"type": "integer", "default": 0},
                                    "tags": {"type": "array", "items": {
                                        "type": "string", "x-kubernetes-validations": [
                                            {"rule": "self.startsWith('t-')", "reason": "FieldValueForbidden"}]}}},
                 }},
             }}}]},
}


def quota(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Quota", "metadata": {"name": "q"}, "spec": spec}


@pytest.fixture
def quotas(k8s: ApiClient) -> CustomObjectsApi:
    ApiextensionsV1Api(k8s).create_custom_resource_definition(RULED_CRD)
    return CustomObjectsApi(k8s)


def rejection(call: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 422
    body: dict[str, Any] = json.loads(refused.value.body)
    return body


def test_a_violated_rule_is_422_with_the_rules_message_at_its_field(quotas: CustomObjectsApi) -> None:
    body = rejection(lambda: quotas.create_namespaced_custom_object(
        "example.io", "v1", "default", "quotas", quota(owner="a", limit=1, used=2)))
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec",
                                          "message": 'Invalid value: "object": used may not exceed limit'}]
    body = rejection(lambda: quotas.create_namespaced_custom_object(
        "example.io", "v1", "default", "quotas", quota(owner="a", limit=1, tags=["t-ok", "bad"])))
    assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == [("spec.tags[1]", "FieldValueForbidden")]
    quotas.create_namespaced_custom_object("example.io", "v1", "default", "quotas", quota(owner="a", limit=1))


def test_transition_rules_apply_to_updates_only(quotas: CustomObjectsApi) -> None:
    created = quotas.create_namespaced_custom_object("example.io", "v1", "default", "quotas",
                                                     quota(owner="a", limit=3))
    changed = copy.deepcopy(created)
    changed["spec"]["owner"] = "b"
    body = rejection(lambda: quotas.replace_namespaced_custom_object("example.io", "v1", "default", "quotas", "q",
                                                                     changed))
    assert 'owner is immutable' in body["message"]
    raised = copy.deepcopy(created)
    raised["spec"]["limit"] = 5
    quotas.replace_namespaced_custom_object("example.io", "v1", "default", "quotas", "q", raised)


def test_project_crd_refuses_min_workers_above_max_workers_at_apply(kubeconfig: Path) -> None:
    crd = subprocess.run(["kubectl", "apply", "-f", str(REPO / "crds")], capture_output=True, text=True, timeout=60,
                         check=False)
    assert crd.returncode == 0, crd.stderr
    job = yaml.safe_load((REPO / "examples" / "finetunejob.yaml").read_text())
    job["spec"]["elastic"].update(minWorkers=3, maxWorkers=2)
    applied = subprocess.run(["kubectl", "apply", "-f", "-"], input=yaml.safe_dump(job), capture_output=True,
                             text=True, timeout=60, check=False)
    assert applied.returncode == 1
    assert 'spec.elastic: Invalid value: "object": minWorkers must be <= maxWorkers' in applied.stderr
