"""The operator is granted exactly what it uses: the table below, nothing on secrets, no wildcards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_chart import RELEASE, RELEASE_NAMESPACE, SCENARIO_DIR, HelmChart, Rendered

Grant = tuple[str, str]  # (apiGroup, resource)

# What the operator does in the namespaces it watches (see charts/elasticft/templates/rbac.yaml for why).
NAMESPACED_GRANTS: dict[Grant, set[str]] = {
    ("elasticft.io", "finetunejobs"): {"get", "list", "watch", "patch"},
    ("elasticft.io", "finetunejobs/status"): {"patch"},
    ("elasticft.io", "finetunejobs/finalizers"): {"update"},
    ("", "pods"): {"list", "create", "delete"},
    ("", "services"): {"get", "create"},
    ("", "persistentvolumeclaims"): {"get", "create"},
    ("", "configmaps"): {"get"},
    ("", "events"): {"create"},
}
# Cluster-scoped reads, needed in both modes.
CLUSTER_GRANTS: dict[Grant, set[str]] = {
    ("", "nodes"): {"list"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}
# Only kopf's namespaced mode follows namespaces (to start and stop per-namespace watches).
NAMESPACED_MODE_GRANTS: dict[Grant, set[str]] = {("", "namespaces"): {"list", "watch"}}

# The release is named after the chart, so every object is simply named after the release.
OPERATOR_ACCOUNT = {"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}


def granted(rules: list[dict[str, Any]]) -> dict[Grant, set[str]]:
    """Flatten RBAC rules into resource → verbs; rules naming specific objects or URLs are not expected."""
    grants: dict[Grant, set[str]] = {}
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected rule shape: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_all_namespaces_mode_grants_exactly_the_operator_table_in_one_cluster_role(chart: HelmChart) -> None:
    rendered = chart.template()
    cluster_role = rendered.only("ClusterRole")
    assert granted(cluster_role["rules"]) == NAMESPACED_GRANTS | CLUSTER_GRANTS
    assert rendered.of_kind("Role") == [] and rendered.of_kind("RoleBinding") == []
    binding = rendered.only("ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role["metadata"]["name"]
    }
    assert binding["subjects"] == [OPERATOR_ACCOUNT]
    assert rendered.only("ServiceAccount")["metadata"]["name"] == OPERATOR_ACCOUNT["name"]


def test_namespaced_mode_grants_each_watched_namespace_a_role_and_cluster_wide_only_reads(
    chart: HelmChart,
) -> None:
    rendered = chart.template(SCENARIO_DIR / "namespaced.yaml")
    assert granted(rendered.only("ClusterRole")["rules"]) == CLUSTER_GRANTS | NAMESPACED_MODE_GRANTS
    assert rendered.only("ClusterRoleBinding")["subjects"] == [OPERATOR_ACCOUNT]
    roles = {role["metadata"]["namespace"]: role for role in rendered.of_kind("Role")}
    assert sorted(roles) == ["team-a", "team-b"]
    for role in roles.values():
        assert granted(role["rules"]) == NAMESPACED_GRANTS
    bindings = {binding["metadata"]["namespace"]: binding for binding in rendered.of_kind("RoleBinding")}
    assert sorted(bindings) == ["team-a", "team-b"]
    for namespace, binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        assert binding["subjects"] == [OPERATOR_ACCOUNT]


def test_no_scenario_grants_secrets_or_wildcards(chart: HelmChart, scenario: Path | None) -> None:
    rendered: Rendered = chart.template(scenario)
    for role in rendered.of_kind("ClusterRole") + rendered.of_kind("Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"wildcard {field} in {role['metadata']['name']}: {rule}"
            assert not {"secrets", "secrets/*"} & set(rule["resources"]), f"secrets granted: {rule}"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), f"privilege verbs: {rule}"


def test_existing_service_account_without_chart_rbac_is_used_as_is(chart: HelmChart) -> None:
    rendered = chart.template(SCENARIO_DIR / "bring-your-own-rbac.yaml")
    kinds = {obj["kind"] for obj in rendered}
    assert kinds.isdisjoint({"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
    pod = rendered.only("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-elasticft"


def test_missing_service_account_name_is_a_clear_install_error(chart: HelmChart) -> None:
    result = chart.run("template", RELEASE, str(chart.path), "--set", "serviceAccount.create=false")
    assert result.returncode != 0
    assert "serviceAccount.name is required when serviceAccount.create is false" in result.stderr
