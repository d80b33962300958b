"""The operator Deployment: Pod Security "restricted", one standalone kopf replica, probes and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_chart import RELEASE, SCENARIO_DIR, HelmChart

# Pod Security Standards, "restricted" profile (which includes "baseline"), as of Kubernetes 1.30.
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every way a pod spec breaks the Pod Security "restricted" profile (empty: it meets it)."""
    problems = [f"spec.{field} is true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)]
    pod_context = pod.get("securityContext", {})
    problems += [f"unsafe sysctl {s['name']}" for s in pod_context.get("sysctls", []) if s["name"] not in SAFE_SYSCTLS]
    for volume in pod.get("volumes", []):
        volume_types = set(volume) - {"name"}
        if not volume_types <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} of type {sorted(volume_types)}")
    containers = pod["containers"] + pod.get("initContainers", []) + pod.get("ephemeralContainers", [])
    for container in containers:
        where = f"container {container['name']}"
        context = container.get("securityContext", {})
        if context.get("privileged"):
            problems.append(f"{where} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} does not set allowPrivilegeEscalation: false")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{where} does not drop ALL capabilities")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where} adds capabilities {capabilities['add']}")
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            problems.append(f"{where} may run as root (runAsNonRoot unset)")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{where} runs as user 0")
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where} has seccomp profile {seccomp.get('type')}")
        selinux = context.get("seLinuxOptions", pod_context.get("seLinuxOptions", {}))
        if selinux.get("type") not in ALLOWED_SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            problems.append(f"{where} sets SELinux options {selinux}")
        if context.get("appArmorProfile", {}).get("type") == "Unconfined":
            problems.append(f"{where} is AppArmor-unconfined")
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{where} sets procMount {context['procMount']}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{where} uses a hostPort")
    return problems


def operator_pod(chart: HelmChart, values_file: Path | None = None, *set_values: str) -> dict[str, Any]:
    pod: dict[str, Any] = chart.template(values_file, *set_values).only("Deployment")["spec"]["template"]["spec"]
    return pod


def test_restricted_check_catches_a_privileged_root_pod() -> None:
    pod = {
        "hostNetwork": True,
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{"name": "shell", "securityContext": {"privileged": True, "runAsUser": 0}}],
    }
    assert len(restricted_violations(pod)) >= 6


def test_operator_pod_meets_pod_security_restricted(chart: HelmChart, scenario: Path | None) -> None:
    pod = operator_pod(chart, scenario)
    assert restricted_violations(pod) == []
    (container,) = pod["containers"]
    # Beyond "restricted": nothing in the image can be modified at run time.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_operator_is_one_standalone_kopf_replica_replaced_with_recreate(chart: HelmChart) -> None:
    deployment = chart.template().only("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["elasticft"]
    assert container["args"] == [
        "run", "--standalone", "--liveness=http://$(POD_IP):8080/healthz", "--metrics-address=$(POD_IP)",
        "--all-namespaces"
    ]


def test_namespaced_mode_hands_each_namespace_to_kopf(chart: HelmChart) -> None:
    (container,) = operator_pod(chart, SCENARIO_DIR / "namespaced.yaml")["containers"]
    assert "--all-namespaces" not in container["args"]
    assert [a for a in container["args"] if a.startswith("--namespace")] == [
        "--namespace=team-a", "--namespace=team-b"
    ]


def test_probes_use_kopf_liveness_endpoint_and_metrics_service_reaches_port_9090(chart: HelmChart) -> None:
    rendered = chart.template(SCENARIO_DIR / "monitoring.yaml")
    (container,) = rendered.only("Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    service = rendered.only("Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8443, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= rendered.only("Deployment")["spec"]["selector"]["matchLabels"].items()
    assert service["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}


def test_image_defaults_to_the_app_version_and_a_digest_pins_it(chart: HelmChart) -> None:
    (default,) = operator_pod(chart)["containers"]
    assert default["image"] == "ghcr.io/elasticft/operator:0.1.0"
    placed = operator_pod(chart, SCENARIO_DIR / "placement.yaml")
    (pinned,) = placed["containers"]
    assert pinned["image"] == (
        "registry.example.com/ml/elasticft-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert pinned["args"][-1] == "--verbose"
    assert {"name": "TZ", "value": "UTC"} in pinned["env"]
    assert placed["nodeSelector"] == {"karpenter.sh/capacity-type": "on-demand"}
    assert placed["securityContext"]["runAsUser"] == 1001


def test_no_podmonitor_unless_asked(chart: HelmChart) -> None:
    assert chart.template().of_kind("PodMonitor") == []


def test_podmonitor_scrapes_the_metrics_port_of_worker_pods_in_every_watched_namespace(chart: HelmChart) -> None:
    monitor = chart.template(SCENARIO_DIR / "monitoring.yaml").only("PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"] == {"matchLabels": {"elasticft.io/role": "worker"}}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("metrics", "/metrics", "30s")
    assert endpoint["honorLabels"] is True, "workers' own `job` label must survive the scrape"
    namespaced = chart.template(SCENARIO_DIR / "namespaced.yaml", "podMonitor.enabled=true").only("PodMonitor")
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert namespaced["metadata"]["name"] == f"{RELEASE}-workers"
