"""How the operator copes with many jobs: N FineTuneJobs in the sandbox, reconcile latency and RSS.

    python bench/operator_scale.py --jobs 200 --json bench/results/operator_scale.json

Each job runs one stand-in worker (`elasticft_sandbox.standin`: the trainer's metrics and summary
without torch; maxWorkers 1, so no rendezvous pod), so 200 jobs fit on two cores. Measured:
- create -> first decision: time from `create` until the job's status names generation 1 (polled
  every 0.5 s; includes kopf's own first steps and the wait for a free worker thread);
- reconcile duration p50/p99 over the whole run, from the operator's own histogram
  (`elasticft_operator_reconcile_seconds`, interpolated within buckets): one reconcile from its
  first API read to its last write, whatever its outcome (a resourceVersion conflict included). It
  does not include the time a due reconcile waits for one of kopf's worker threads;
- the same over the steady part only (every job running, nothing starting), from the histogram's
  growth during `--hold`;
- the operator process's RSS once every job is running, and at the end; its CPU seconds per
  reconcile during the hold;
- the machine's load average at the start and the end: the machine is shared, so a busy machine
  shows here rather than as a mystery in the latencies.
The API emulator, the kubelet and the 200 worker processes run on the same two cores as the
operator, so the latencies are an upper bound of what the operator alone would show. Nearly all of
a reconcile's time is spent waiting for the emulator's answers; the emulator shares one process
(and its GIL) with the kubelet, which samples every pod's process tree once a second.
Targets (issue 7): N = 200, p99 <= 1 s, RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import yaml
from kubernetes.client import ApiClient, Configuration, CustomObjectsApi
from prometheus_client.parser import text_string_to_metric_families

from elasticft_sandbox.cluster import LocalCluster

RESULTS = Path(__file__).resolve().parent / "results"
POOLS = {
    "seconds_per_tick": 5,
    "reclaim_notice_s": 5,
    "pools": [
        {"name": "spot", "capacity_type": "spot", "nodes": 4, "gpus_per_node": 64, "cpus_per_node": 512,
         "max_pods_per_node": 110, "price_per_hour": 0.918, "labels": {"karpenter.sh/capacity-type": "spot"}},
        {"name": "on-demand", "capacity_type": "on-demand", "nodes": 4, "gpus_per_node": 64, "cpus_per_node": 512,
         "max_pods_per_node": 110, "price_per_hour": 3.06, "labels": {"karpenter.sh/capacity-type": "on-demand"}},
    ],
}


def job(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": f"scale-{index:03d}"},
        "spec": {
            "command": ["python", "-m", "elasticft_sandbox.standin"],
            "env": [{"name": "STANDIN_STEP_SECONDS", "value": "0.5"}],
            "totalSteps": 100000, "globalBatchSize": 8,
            "resources": {"requests": {"nvidia.com/gpu": 1, "cpu": "100m"}},
            "elastic": {"minWorkers": 1, "maxWorkers": 1},
            "objective": {"maxDuration": "24h"},
            "checkpoint": {"volume": {"emptyDir": True}, "intervalSteps": 100},
        },
    }


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a Prometheus histogram, by upper bound."""
    return {float(sample.labels["le"]): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == f"{name}_bucket"}


def histogram_quantiles(counts: dict[float, float], quantiles: list[float]) -> dict[float, float]:
    """Quantiles of a Prometheus histogram, linearly interpolated inside buckets (as histogram_quantile).
    A quantile in the +Inf bucket is reported as +Inf: the largest bound would understate it."""
    buckets = sorted(counts.items())
    total = buckets[-1][1] if buckets else 0.0
    result = {}
    for q in quantiles:
        rank, lower_bound, lower_count = q * total, 0.0, 0.0
        for bound, count in buckets:
            if count >= rank:
                if bound == float("inf"):
                    result[q] = float("inf")
                else:
                    width = count - lower_count
                    result[q] = lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 0)
                break
            lower_bound, lower_count = bound, count
    return result


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def operator_reconciles(metrics_url: str) -> tuple[dict[float, float], float]:
    """The reconcile histogram's buckets and the number of reconciles, as the operator reports them now."""
    text = urllib.request.urlopen(metrics_url).read().decode()
    counts = histogram_buckets(text, "elasticft_operator_reconcile_seconds")
    return counts, counts.get(float("inf"), 0.0)


def rounded(value: float, digits: int) -> float | str:
    return "inf" if value == float("inf") else round(value, digits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--hold", type=float, default=60, help="seconds to keep every job running")
    parser.add_argument("--json", type=Path, default=RESULTS / "operator_scale.json")
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox/operator-scale"))
    args = parser.parse_args()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    (args.state_dir / "pools.yaml").write_text(yaml.safe_dump(POOLS))
    metrics_port = 19090
    cluster = LocalCluster(args.state_dir / "sandbox", args.state_dir / "pools.yaml", interval_s=5.0,
                           metrics_port=metrics_port)
    load_start = os.getloadavg()
    with cluster, ApiClient(Configuration(host=cluster.sandbox.url)) as client:
        api = CustomObjectsApi(client)
        created: dict[str, float] = {}
        started = time.monotonic()
        for index in range(args.jobs):
            body = job(index)
            api.create_namespaced_custom_object("elasticft.io", "v1alpha1", "default", "finetunejobs", body)
            created[body["metadata"]["name"]] = time.monotonic()
        create_s = time.monotonic() - started
        first_decision: dict[str, float] = {}
        running: set[str] = set()
        deadline = time.monotonic() + 600
        while (len(first_decision) < args.jobs or len(running) < args.jobs) and time.monotonic() < deadline:
            items = api.list_namespaced_custom_object("elasticft.io", "v1alpha1", "default", "finetunejobs")["items"]
            now = time.monotonic()
            for item in items:
                name, status = item["metadata"]["name"], item.get("status") or {}
                if status.get("generation", 0) >= 1 and name not in first_decision:
                    first_decision[name] = now - created[name]
                if status.get("phase") == "Running":
                    running.add(name)
            time.sleep(0.5)
        all_running_s = time.monotonic() - started
        assert cluster.operator.process is not None
        pid = cluster.operator.process.pid
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        rss_running = rss_mb(pid)
        before, reconciles_before = operator_reconciles(metrics_url)
        cpu_before = cpu_s(pid)
        time.sleep(args.hold)
        cpu_hold = cpu_s(pid) - cpu_before
        rss_end = rss_mb(pid)
        after, reconciles_after = operator_reconciles(metrics_url)
        load_end = os.getloadavg()
    quantiles = histogram_quantiles(after, [0.5, 0.99])
    steady = histogram_quantiles({bound: count - before.get(bound, 0.0) for bound, count in after.items()}, [0.5, 0.99])
    hold_reconciles = reconciles_after - reconciles_before
    latencies = sorted(first_decision.values())
    result = {
        "jobs": args.jobs,
        "jobs_with_a_decision": len(first_decision),
        "jobs_running": len(running),
        "create_all_s": round(create_s, 2),
        "all_running_s": round(all_running_s, 1),
        "create_to_first_decision_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "create_to_first_decision_p99_s": round(latencies[int(0.99 * (len(latencies) - 1))], 3) if latencies else None,
        "reconciles": int(reconciles_after),
        "reconcile_p50_s": rounded(quantiles.get(0.5, float("nan")), 4),
        "reconcile_p99_s": rounded(quantiles.get(0.99, float("nan")), 4),
        "hold_s": args.hold,
        "hold_reconciles_per_s": round(hold_reconciles / args.hold, 1),
        "hold_reconcile_p50_s": rounded(steady.get(0.5, float("nan")), 4),
        "hold_reconcile_p99_s": rounded(steady.get(0.99, float("nan")), 4),
        "hold_operator_cpu_ms_per_reconcile": round(1000 * cpu_hold / hold_reconciles, 1) if hold_reconciles else None,
        "operator_rss_mb_all_running": round(rss_running, 1),
        "operator_rss_mb_end": round(rss_end, 1),
        "load_average_1m_start_end": [round(load_start[0], 1), round(load_end[0], 1)],
        "targets": {"reconcile_p99_s": 1.0, "operator_rss_mb": 300},
    }
    print("| measure | value |\n|---|---|")
    for key, value in result.items():
        if key != "targets":
            print(f"| {key} | {value} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
