"""Pure builders of a FineTuneJob's children: worker pods, the rendezvous pod and Service, the claim.

Each returns a plain Kubernetes manifest (a dict) from the job and a few decided facts, so the same
inputs always give the same object and the builders are tested without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticft.api.models import API_VERSION, KIND, CapacityPool, FineTuneJobSpec
from elasticft.controller.names import (
    CHECKPOINT_MOUNT,
    LABEL_CAPACITY,
    LABEL_GENERATION,
    LABEL_INDEX,
    LABEL_JOB,
    LABEL_ROLE,
    ON_DEMAND,
    RENDEZVOUS_PORT,
    ROLE_RENDEZVOUS,
    ROLE_WORKER,
    SPOT,
    TERMINATION_LOG,
    checkpoint_claim_name,
    rendezvous_id,
    rendezvous_name,
    rendezvous_store_port,
    worker_name,
)

Manifest = dict[str, Any]

# Long enough for the trainer to finish its step and write an emergency checkpoint after SIGTERM.
WORKER_GRACE_SECONDS = 60
CHECKPOINT_VOLUME = "checkpoints"
TRAINER_UID = 10001  # the user of Dockerfile.trainer


@dataclass(frozen=True)
class JobRef:
    """What children need to know of their owner."""

    name: str
    namespace: str
    uid: str

    def owner_reference(self) -> Manifest:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class WorkerPlacement:
    """One worker of a world: the world it belongs to, its index, the world's size, and where it runs."""

    world: int
    index: int
    world_size: int
    capacity_type: str  # SPOT or ON_DEMAND


def _metadata(job: JobRef, name: str, labels: dict[str, str]) -> Manifest:
    return {
        "name": name,
        "namespace": job.namespace,
        "labels": {LABEL_JOB: job.name, "app.kubernetes.io/managed-by": "elasticft", **labels},
        "ownerReferences": [job.owner_reference()],
    }


def capacity_pool(spec: FineTuneJobSpec, capacity_type: str) -> CapacityPool:
    return spec.capacity.spot if capacity_type == SPOT else spec.capacity.on_demand


def checkpoint_volume(job: JobRef, spec: FineTuneJobSpec) -> Manifest:
    volume = spec.checkpoint.volume
    if volume.empty_dir:
        return {"name": CHECKPOINT_VOLUME, "emptyDir": {}}
    if volume.host_path:
        return {"name": CHECKPOINT_VOLUME, "hostPath": {"path": volume.host_path, "type": "DirectoryOrCreate"}}
    claim = volume.claim_name or checkpoint_claim_name(job.name)
    return {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": claim}}


def checkpoint_dir(job: JobRef) -> str:
    return f"{CHECKPOINT_MOUNT}/{job.namespace}/{job.name}"


def trainer_env(job: JobRef, spec: FineTuneJobSpec, placement: WorkerPlacement, rdzv_endpoint: str) -> list[Manifest]:
    """The trainer's configuration (its ELASTICFT_* contract), then the user's own variables."""
    checkpoint = spec.checkpoint
    classification = spec.classification
    values: dict[str, str | int | float | None] = {
        "ELASTICFT_JOB_NAME": job.name,
        "ELASTICFT_GENERATION": placement.world,  # the trainer's name for the world
        "ELASTICFT_RDZV_ENDPOINT": rdzv_endpoint or None,
        "ELASTICFT_MODEL": spec.model,
        "ELASTICFT_TASK": spec.task,
        "ELASTICFT_DATASET": spec.dataset,
        "ELASTICFT_LABELS": ",".join(classification.labels) if classification else None,
        "ELASTICFT_TEXT_COLUMN": classification.text_column if classification else None,
        "ELASTICFT_LABEL_COLUMN": classification.label_column if classification else None,
        "ELASTICFT_EVAL_FRACTION": classification.eval_fraction if classification else None,
        "ELASTICFT_SEQ_LEN": spec.seq_len,
        "ELASTICFT_TOTAL_STEPS": spec.total_steps,
        "ELASTICFT_EPOCHS": spec.epochs,
        "ELASTICFT_GLOBAL_BATCH_SIZE": spec.global_batch_size,
        "ELASTICFT_MICRO_BATCH_SIZE": spec.micro_batch_size,
        "ELASTICFT_LEARNING_RATE": spec.learning_rate,
        "ELASTICFT_SEED": spec.seed,
        "ELASTICFT_PRECISION": spec.precision,
        "ELASTICFT_LORA_RANK": spec.lora.rank if spec.lora else 0,
        "ELASTICFT_LORA_ALPHA": spec.lora.alpha if spec.lora else None,
        "ELASTICFT_LORA_TARGETS": ",".join(spec.lora.targets) if spec.lora and spec.lora.targets else None,
        "ELASTICFT_CHECKPOINT_DIR": checkpoint_dir(job),
        "ELASTICFT_CHECKPOINT_INTERVAL_STEPS": checkpoint.interval_steps,
        "ELASTICFT_CHECKPOINT_INTERVAL_SECONDS": checkpoint.interval_seconds,
        "ELASTICFT_CHECKPOINT_KEEP": checkpoint.keep,
        "ELASTICFT_METRICS_HOST": "$(POD_IP)",
        "ELASTICFT_METRICS_PORT": spec.metrics.port,
        "ELASTICFT_TERMINATION_LOG": TERMINATION_LOG,
    }
    env: list[Manifest] = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    env += [{"name": name, "value": str(value)} for name, value in values.items() if value is not None]
    env += [{"name": var.name, "value": var.value} for var in spec.env]
    return env


def needs_rendezvous(spec: FineTuneJobSpec) -> bool:
    """Only a job that may run several workers needs the rendezvous pod and Service."""
    return spec.elastic.max_workers > 1


def torchrun_args(job: JobRef, spec: FineTuneJobSpec, placement: WorkerPlacement) -> list[str]:
    """A fixed-size torchrun world: membership changes are new worlds, never in place.

    The c10d store lives in the rendezvous pod, so `is_host=false`: no worker (spot or not) hosts it.
    A job that never runs more than one worker needs no store: torchrun's standalone mode.
    """
    n = placement.world_size
    if not needs_rendezvous(spec):
        return ["--standalone", "--nnodes=1", f"--nproc-per-node={spec.nproc_per_worker}", "--max-restarts=0",
                "-m", "elasticft_trainer"]
    return [
        f"--nnodes={n}:{n}",
        f"--nproc-per-node={spec.nproc_per_worker}",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=$(ELASTICFT_RDZV_ENDPOINT)",
        f"--rdzv-id={rendezvous_id(job.name, placement.world)}",
        "--rdzv-conf=is_host=false,join_timeout=300",
        "--local-addr=$(POD_IP)",
        "--max-restarts=0",
        "-m",
        "elasticft_trainer",
    ]


def worker_pod(job: JobRef, spec: FineTuneJobSpec, placement: WorkerPlacement, rdzv_endpoint: str) -> Manifest:
    """One worker pod of a world, placed on spot or on-demand capacity."""
    pool = capacity_pool(spec, placement.capacity_type)
    labels = {
        LABEL_ROLE: ROLE_WORKER,
        LABEL_GENERATION: str(placement.world),
        LABEL_INDEX: str(placement.index),
        LABEL_CAPACITY: placement.capacity_type,
    }
    container: Manifest = {
        "name": "trainer",
        "image": spec.image,
        "command": spec.command or ["torchrun"],
        "args": (torchrun_args(job, spec, placement) if spec.command is None else []) + (spec.args or []),
        "env": trainer_env(job, spec, placement, rdzv_endpoint),
        "ports": [{"name": "metrics", "containerPort": spec.metrics.port}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": spec.metrics.port}, "periodSeconds": 2},
        "resources": {kind: {name: str(quantity) for name, quantity in amounts.items()}
                      for kind, amounts in spec.resources.model_dump(exclude_defaults=True).items()},
        "volumeMounts": [{"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(job, worker_name(job.name, placement.world, placement.index), labels),
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": WORKER_GRACE_SECONDS,
            # The trainer image runs as this non-root user; fsGroup makes a claim's files writable to it.
            "securityContext": {"runAsNonRoot": True, "runAsUser": TRAINER_UID, "fsGroup": TRAINER_UID},
            "nodeSelector": dict(pool.node_selector),
            "tolerations": [t.model_dump(by_alias=True, exclude_none=True) for t in pool.tolerations],
            "containers": [container],
            "volumes": [checkpoint_volume(job, spec)],
        },
    }


def rendezvous_capacity(spec: FineTuneJobSpec) -> str:
    """The store must outlive spot workers: on-demand whenever the job may use on-demand."""
    return ON_DEMAND if spec.capacity.on_demand.enabled else SPOT


def rendezvous_pod(job: JobRef, spec: FineTuneJobSpec) -> Manifest:
    """The c10d TCPStore every world rendezvouses through; it lives as long as the job."""
    capacity_type = rendezvous_capacity(spec)
    pool = capacity_pool(spec, capacity_type)
    labels = {LABEL_ROLE: ROLE_RENDEZVOUS, LABEL_CAPACITY: capacity_type}
    store_port = rendezvous_store_port(job.namespace, job.name)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(job, rendezvous_name(job.name), labels),
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
            "securityContext": {"runAsNonRoot": True, "runAsUser": TRAINER_UID},
            "nodeSelector": dict(pool.node_selector),
            "tolerations": [t.model_dump(by_alias=True, exclude_none=True) for t in pool.tolerations],
            "containers": [
                {
                    "name": "store",
                    "image": spec.image,
                    "command": ["python", "-m", "elasticft_trainer.store"],
                    "args": ["--host", "$(POD_IP)", "--port", str(store_port)],
                    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "ports": [{"name": "c10d", "containerPort": store_port}],
                    # Ready once the TCPStore accepts connections: the operator launches workers only
                    # then. A bare connect and close does not disturb the store (tests/trainer).
                    "readinessProbe": {"tcpSocket": {"port": "c10d"}, "periodSeconds": 1},
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                }
            ],
        },
    }


def rendezvous_service(job: JobRef) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(job, rendezvous_name(job.name), {LABEL_ROLE: ROLE_RENDEZVOUS}),
        "spec": {
            "selector": {LABEL_JOB: job.name, LABEL_ROLE: ROLE_RENDEZVOUS},
            "ports": [{"name": "c10d", "port": RENDEZVOUS_PORT,
                       "targetPort": rendezvous_store_port(job.namespace, job.name)}],
        },
    }


def checkpoint_claim(job: JobRef, spec: FineTuneJobSpec) -> Manifest | None:
    """The claim the operator creates when the job names no volume of its own.

    Deliberately without an owner reference: the final model must outlive the FineTuneJob."""
    volume = spec.checkpoint.volume
    if volume.claim_name or volume.empty_dir or volume.host_path:
        return None
    claim: Manifest = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": checkpoint_claim_name(job.name),
            "namespace": job.namespace,
            "labels": {LABEL_JOB: job.name, "app.kubernetes.io/managed-by": "elasticft"},
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": str(volume.size)}}},
    }
    if volume.storage_class_name:
        claim["spec"]["storageClassName"] = volume.storage_class_name
    return claim
