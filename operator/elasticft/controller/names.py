"""Deterministic names and labels of a job's children: re-running a reconcile finds, never duplicates."""

from __future__ import annotations

import zlib

LABEL_JOB = "elasticft.io/job"
# A pod's world (docs/worlds.md). The label keeps its first name, generation, for compatibility with
# running jobs and with selectors users wrote; it is not Kubernetes' metadata.generation.
LABEL_GENERATION = "elasticft.io/generation"
LABEL_CAPACITY = "elasticft.io/capacity-type"
LABEL_ROLE = "elasticft.io/role"
LABEL_INDEX = "elasticft.io/worker-index"

ROLE_WORKER = "worker"
ROLE_RENDEZVOUS = "rendezvous"
SPOT = "spot"
ON_DEMAND = "on-demand"

RENDEZVOUS_PORT = 29400
CHECKPOINT_MOUNT = "/checkpoints"
TERMINATION_LOG = "/dev/termination-log"


def rendezvous_store_port(namespace: str, job: str) -> int:
    """The port the c10d store listens on inside its pod. torch's TCPStore binds every interface, so
    where pods share one network (the sandbox: processes on one machine) each job needs its own port;
    it is derived from the job's name so every look computes the same one. The Service keeps 29400."""
    return 30000 + zlib.crc32(f"{namespace}/{job}".encode()) % 20000


def worker_name(job: str, world: int, index: int) -> str:
    return f"{job}-g{world}-w{index}"


def rendezvous_name(job: str) -> str:
    return f"{job}-rdzv"


def checkpoint_claim_name(job: str) -> str:
    return f"{job}-checkpoints"


def rendezvous_id(job: str, world: int) -> str:
    return f"{job}-g{world}"


def job_selector(job: str, role: str | None = None) -> str:
    """Label selector for a job's pods (all of them, or one role)."""
    selector = f"{LABEL_JOB}={job}"
    return f"{selector},{LABEL_ROLE}={role}" if role else selector
