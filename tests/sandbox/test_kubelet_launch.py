"""How the sandbox kubelet turns a container spec into a host process (pure functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from elasticft_sandbox.launch import (
    LaunchError,
    PodDirs,
    build_launch,
    expand,
    field_ref_value,
    readiness_check,
    rewrite_paths,
    service_env,
)

PYTHON = "/opt/venv/bin/python3.11"
HOST_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root", "KUBECONFIG": "/secret/kubeconfig"}


def worker_pod(**container: Any) -> dict[str, Any]:
    spec_container = {"name": "trainer", "image": "elasticft-trainer", "command": ["torchrun"], **container}
    return {
        "metadata": {
            "name": "job-g1-w0",
            "namespace": "ml",
            "uid": "uid-1",
            "labels": {"elasticft.io/job": "job", "elasticft.io/generation": "1"},
        },
        "spec": {
            "nodeName": "spot-3",
            "containers": [spec_container],
            "volumes": [
                {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "ckpt"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "data", "hostPath": {"path": "/srv/data"}},
            ],
        },
    }


def dirs(tmp_path: Path) -> PodDirs:
    return PodDirs(tmp_path / "pods" / "uid-1", tmp_path / "volumes")


def test_expansion_follows_kubernetes_rules() -> None:
    env = {"POD_IP": "127.0.1.7", "PORT": "29400"}
    assert expand("$(POD_IP):$(PORT)", env) == "127.0.1.7:29400"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(POD_IP) is escaped", env) == "$(POD_IP) is escaped"
    assert expand("cost $5 and $(unclosed", env) == "cost $5 and $(unclosed"


def test_downward_api_fields_resolve_from_the_pod() -> None:
    pod = worker_pod()
    assert field_ref_value(pod, "metadata.name", "127.0.1.2", "127.2.0.1") == "job-g1-w0"
    assert field_ref_value(pod, "metadata.namespace", "", "") == "ml"
    assert field_ref_value(pod, "metadata.uid", "", "") == "uid-1"
    assert field_ref_value(pod, "metadata.labels['elasticft.io/generation']", "", "") == "1"
    assert field_ref_value(pod, "spec.nodeName", "", "") == "spot-3"
    assert field_ref_value(pod, "status.podIP", "127.0.1.2", "127.2.0.1") == "127.0.1.2"
    assert field_ref_value(pod, "status.hostIP", "127.0.1.2", "127.2.0.1") == "127.2.0.1"
    with pytest.raises(LaunchError, match="unsupported fieldRef"):
        field_ref_value(pod, "spec.bogus", "", "")


def test_service_variables_match_what_a_kubelet_injects() -> None:
    service = {
        "metadata": {"name": "job-rdzv", "namespace": "ml"},
        "spec": {"clusterIP": "127.1.0.9", "ports": [{"name": "c10d", "port": 29400, "protocol": "TCP"}]},
    }
    headless = {"metadata": {"name": "peers"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    env = service_env([service, headless])
    assert env["JOB_RDZV_SERVICE_HOST"] == "127.1.0.9"
    assert env["JOB_RDZV_SERVICE_PORT"] == "29400"
    assert env["JOB_RDZV_SERVICE_PORT_C10D"] == "29400"
    assert env["JOB_RDZV_PORT"] == "tcp://127.1.0.9:29400"
    assert env["JOB_RDZV_PORT_29400_TCP_ADDR"] == "127.1.0.9"
    assert not any(name.startswith("PEERS_") for name in env)


def test_paths_are_rewritten_only_at_path_boundaries() -> None:
    mapping = [("/checkpoints/sub", "/host/sub"), ("/checkpoints", "/host/ckpt")]
    assert rewrite_paths("/checkpoints/job", mapping) == "/host/ckpt/job"
    assert rewrite_paths("--dir=/checkpoints", mapping) == "--dir=/host/ckpt"
    assert rewrite_paths("/checkpoints/sub/x", mapping) == "/host/sub/x"
    assert rewrite_paths("/checkpoints-old/job", mapping) == "/checkpoints-old/job"
    assert rewrite_paths("/data/checkpoints", mapping) == "/data/checkpoints"


def test_worker_launch_maps_volumes_env_and_interpreter(tmp_path: Path) -> None:
    pod = worker_pod(
        command=["python3", "-m", "elasticft_trainer"],
        args=["--rdzv-endpoint=$(ELASTICFT_RDZV_ENDPOINT)", "--local-addr=$(POD_IP)", "/scratch/tmp"],
        env=[
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ELASTICFT_RDZV_ENDPOINT", "value": "$(JOB_RDZV_SERVICE_HOST):29400"},
            {"name": "ELASTICFT_CHECKPOINT_DIR", "value": "/checkpoints/job"},
            {"name": "ELASTICFT_TERMINATION_LOG", "value": "/dev/termination-log"},
            {"name": "DATASET", "value": "/data/corpus.txt"},
        ],
        volumeMounts=[
            {"name": "checkpoints", "mountPath": "/checkpoints"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "data", "mountPath": "/data", "readOnly": True},
        ],
    )
    services = {"JOB_RDZV_SERVICE_HOST": "127.1.0.9"}
    launch = build_launch(pod, dirs(tmp_path), services, "127.0.1.2", "127.2.0.4", PYTHON, HOST_ENV)

    assert launch.argv == [
        PYTHON,
        "-m",
        "elasticft_trainer",
        "--rdzv-endpoint=127.1.0.9:29400",
        "--local-addr=127.0.1.2",
        str(tmp_path / "pods/uid-1/volumes/scratch/tmp"),
    ]
    assert launch.env["ELASTICFT_CHECKPOINT_DIR"] == str(tmp_path / "volumes/ml/ckpt/job")
    assert launch.env["ELASTICFT_TERMINATION_LOG"] == str(tmp_path / "pods/uid-1/termination-log")
    assert launch.env["DATASET"] == "/srv/data/corpus.txt"
    assert launch.env["PATH"].split(":")[0] == "/opt/venv/bin"
    assert launch.env["HOSTNAME"] == "job-g1-w0"
    assert "KUBECONFIG" not in launch.env, "the host's credentials must not leak into pods"
    assert launch.cwd == tmp_path / "pods/uid-1/rootfs"
    assert tmp_path / "volumes/ml/ckpt" in launch.host_dirs


def test_env_values_expand_only_earlier_variables(tmp_path: Path) -> None:
    pod = worker_pod(
        env=[
            {"name": "ADDR", "value": "$(HOST):$(PORT)"},
            {"name": "HOST", "value": "127.0.0.9"},
            {"name": "PORT", "value": "80"},
        ]
    )
    launch = build_launch(pod, dirs(tmp_path), {}, "127.0.1.2", "", PYTHON, HOST_ENV)
    assert launch.env["ADDR"] == "$(HOST):$(PORT)"


def test_working_dir_inside_a_volume_is_mapped(tmp_path: Path) -> None:
    mounts = [{"name": "checkpoints", "mountPath": "/checkpoints"}]
    pod = worker_pod(workingDir="/checkpoints", volumeMounts=mounts)
    launch = build_launch(pod, dirs(tmp_path), {}, "127.0.1.2", "", PYTHON, HOST_ENV)
    assert launch.cwd == tmp_path / "volumes/ml/ckpt"


def test_container_of_an_unknown_image_without_command_cannot_run(tmp_path: Path) -> None:
    pod = worker_pod(command=[], args=["--steps", "3"])
    with pytest.raises(LaunchError) as error:
        build_launch(pod, dirs(tmp_path), {}, "127.0.1.2", "", PYTHON, HOST_ENV)
    assert error.value.reason == "CreateContainerConfigError"
    assert "'elasticft-trainer' is not one of the project's images" in error.value.message


def test_project_images_run_their_entrypoint_with_the_containers_args(tmp_path: Path) -> None:
    operator = worker_pod(image="ghcr.io/elasticft/operator:0.1.0", command=[], args=["run", "--standalone"])
    launch = build_launch(operator, dirs(tmp_path), {}, "127.0.1.2", "", PYTHON, HOST_ENV)
    assert launch.argv == ["elasticft", "run", "--standalone"]
    trainer = worker_pod(image="ghcr.io/elasticft/trainer@sha256:abc", command=[])
    assert build_launch(trainer, dirs(tmp_path), {}, "127.0.1.2", "", PYTHON, HOST_ENV).argv == [
        PYTHON, "-m", "elasticft_trainer"]


def test_unsupported_volume_kind_is_a_config_error(tmp_path: Path) -> None:
    pod = worker_pod(volumeMounts=[{"name": "settings", "mountPath": "/etc/settings"}])
    pod["spec"]["volumes"].append({"name": "settings", "configMap": {"name": "settings"}})
    with pytest.raises(LaunchError, match="settings"):
        build_launch(pod, dirs(tmp_path), {}, "127.0.1.2", "", PYTHON, HOST_ENV)


def test_readiness_probes_resolve_named_ports_to_the_pod_ip() -> None:
    container = {
        "ports": [{"name": "metrics", "containerPort": 9400}],
        "readinessProbe": {"httpGet": {"path": "healthz", "port": "metrics"}, "periodSeconds": 2},
    }
    check = readiness_check(container, "127.0.1.5", [], PYTHON)
    assert check is not None
    assert check.url == "http://127.0.1.5:9400/healthz"
    assert (check.period_s, check.timeout_s, check.failure_threshold) == (2, 1, 3)
    container["readinessProbe"] = {"tcpSocket": {"port": 29400}}
    tcp = readiness_check(container, "127.0.1.5", [], PYTHON)
    assert tcp is not None and tcp.tcp_address == ("127.0.1.5", 29400)


def test_exec_probe_runs_with_mapped_paths_and_the_sandbox_python() -> None:
    container = {"readinessProbe": {"exec": {"command": ["python", "-c", "1", "/checkpoints/ok"]}}}
    check = readiness_check(container, "127.0.1.5", [("/checkpoints", "/host/ckpt")], PYTHON)
    assert check is not None and check.command == (PYTHON, "-c", "1", "/host/ckpt/ok")


def test_unknown_probe_port_name_is_a_config_error() -> None:
    container = {"readinessProbe": {"httpGet": {"port": "web"}}}
    with pytest.raises(LaunchError, match="web"):
        readiness_check(container, "127.0.1.5", [], PYTHON)


def test_nul_in_an_argument_is_a_container_error_not_a_crash(tmp_path: Path) -> None:
    pod = worker_pod(args=["--name=a\x00b"])
    with pytest.raises(LaunchError) as error:
        build_launch(pod, dirs(tmp_path), {}, "127.0.1.2", "", PYTHON, HOST_ENV)
    assert error.value.reason == "CreateContainerError"
