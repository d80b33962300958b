"""The scheduler's filters and choice of node (pure)."""

from __future__ import annotations

from typing import Any

from elasticft_sandbox.scheduling import place_pod, tolerates, usage_by_node

SPOT_TAINT = {"key": "aws-node-termination-handler/spot-itn", "effect": "NoSchedule"}


def node(name: str, capacity_type: str, gpus: int = 1, taints: list[Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"karpenter.sh/capacity-type": capacity_type}},
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str, gpus: int = 0, node_name: str = "", **spec: Any) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "main", "resources": resources}], "nodeName": node_name, **spec},
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def test_node_selector_picks_the_capacity_type() -> None:
    nodes = [node("od-0", "on-demand"), node("spot-0", "spot")]
    placement = place_pod(pod("w", nodeSelector={"karpenter.sh/capacity-type": "spot"}), nodes, {})
    assert placement.node == "spot-0"


def test_required_node_affinity_is_honoured() -> None:
    nodes = [node("od-0", "on-demand"), node("spot-0", "spot")]
    not_spot = {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}
    required = {"nodeSelectorTerms": [{"matchExpressions": [not_spot]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    assert place_pod(pod("w", affinity=affinity), nodes, {}).node == "od-0"


def test_gpu_requests_fill_nodes_then_the_pod_is_unschedulable() -> None:
    nodes = [node("spot-0", "spot"), node("spot-1", "spot")]
    running = [pod("a", gpus=1, node_name="spot-0")]
    assert place_pod(pod("b", gpus=1), nodes, usage_by_node(running)).node == "spot-1"
    running.append(pod("b", gpus=1, node_name="spot-1"))
    placement = place_pod(pod("c", gpus=1), nodes, usage_by_node(running))
    assert placement.node is None
    assert placement.message == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."


def test_finished_pods_free_their_resources() -> None:
    done = pod("a", gpus=1, node_name="spot-0")
    done["status"]["phase"] = "Succeeded"
    assert place_pod(pod("b", gpus=1), [node("spot-0", "spot")], usage_by_node([done])).node == "spot-0"


def test_termination_taint_keeps_new_pods_off_unless_tolerated() -> None:
    nodes = [node("spot-0", "spot", taints=[SPOT_TAINT])]
    placement = place_pod(pod("w"), nodes, {})
    assert placement.node is None
    assert "untolerated taint {aws-node-termination-handler/spot-itn: }" in placement.message
    tolerant = pod("w", tolerations=[{"key": "aws-node-termination-handler/spot-itn", "operator": "Exists"}])
    assert place_pod(tolerant, nodes, {}).node == "spot-0"


def test_prefer_no_schedule_taints_do_not_block() -> None:
    nodes = [node("spot-0", "spot", taints=[{"key": "x", "effect": "PreferNoSchedule"}])]
    assert place_pod(pod("w"), nodes, {}).node == "spot-0"


def test_toleration_matching_rules() -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert tolerates([{"operator": "Exists"}], taint)
    assert tolerates([{"key": "nvidia.com/gpu", "value": "present"}], taint)
    assert not tolerates([{"key": "nvidia.com/gpu", "value": "absent"}], taint)
    assert not tolerates([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}], taint)


def test_least_allocated_node_wins() -> None:
    nodes = [node("big", "spot", gpus=4), node("small", "spot", gpus=2)]
    usage = usage_by_node([pod("a", gpus=3, node_name="big")])
    assert place_pod(pod("b", gpus=1), nodes, usage).node == "small"


def test_not_ready_and_cordoned_nodes_are_skipped() -> None:
    cordoned = node("a", "spot")
    cordoned["spec"]["unschedulable"] = True
    not_ready = node("b", "spot")
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    placement = place_pod(pod("w"), [cordoned, not_ready], {})
    assert placement.message == (
        "0/2 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable."
    )
