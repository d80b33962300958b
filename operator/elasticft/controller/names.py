"""Deterministic names and labels of a job's children: re-running a reconcile finds, never duplicates."""

from __future__ import annotations

LABEL_JOB = "elasticft.io/job"
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


def worker_name(job: str, generation: int, index: int) -> str:
    return f"{job}-g{generation}-w{index}"


def rendezvous_name(job: str) -> str:
    return f"{job}-rdzv"


def checkpoint_claim_name(job: str) -> str:
    return f"{job}-checkpoints"


def rendezvous_id(job: str, generation: int) -> str:
    return f"{job}-g{generation}"


def job_selector(job: str, role: str | None = None) -> str:
    """Label selector for a job's pods (all of them, or one role)."""
    selector = f"{LABEL_JOB}={job}"
    return f"{selector},{LABEL_ROLE}={role}" if role else selector
