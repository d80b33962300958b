"""The FineTuneJob resource (`elasticft.io/v1alpha1`) as pydantic models.

These models are the single source of the API: the CRD's openAPIV3Schema is generated from them
(`elasticft.api.crd`), `elasticft validate` checks files with them, and the operator reads specs and
writes status through them. Field names are snake_case in Python and camelCase on the wire.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from elasticft.api.durations import Duration
from elasticft.api.kubernetes import (
    DnsSubdomain,
    EnvName,
    EnvValue,
    Int64,
    Labels,
    LabelValue,
    QualifiedName,
    Quantity,
)
from elasticft.types import Mode

GROUP = "elasticft.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FineTuneJob"
PLURAL = "finetunejobs"
SINGULAR = "finetunejob"
SHORT_NAMES = ["ftj"]

DEFAULT_TRAINER_IMAGE = "ghcr.io/elasticft/trainer:0.1.0"
BUILTIN_MODEL = "builtin:gpt-tiny"

class ApiModel(BaseModel):
    """Strict camelCase model: unknown fields are errors, as with `kubectl apply --validate=strict`."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )


class Precision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"


class Task(StrEnum):
    CAUSAL_LM = "causal-lm"
    CLASSIFICATION = "classification"


class PricingSource(StrEnum):
    STATIC = "Static"
    CONFIG_MAP = "ConfigMap"
    PROMETHEUS = "Prometheus"


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    RESCALING = "Rescaling"
    RECOVERING = "Recovering"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


# --- spec -----------------------------------------------------------------------------------------


class EnvVar(ApiModel):
    name: EnvName = Field(description="Environment variable name.")
    value: EnvValue = Field("", description="Value passed to every worker.")


class ResourceRequirements(ApiModel):
    requests: dict[QualifiedName, Quantity] = Field(default_factory=dict, description="Per-worker requests.")
    limits: dict[QualifiedName, Quantity] = Field(default_factory=dict, description="Per-worker limits.")


class LoRA(ApiModel):
    rank: int = Field(8, ge=1, le=1024, description="LoRA rank r.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling alpha.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path.")
    targets: list[str] = Field(
        default_factory=list, description="Module names LoRA adapts; empty = the model's attention projections."
    )


class Classification(ApiModel):
    labels: list[str] = Field(min_length=2, description="The classes, in order; rows with another label are skipped.")
    text_column: str = Field("text", min_length=1, description="CSV column holding the text.")
    label_column: str = Field("label", min_length=1, description="CSV column holding the class.")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="Share of the rows held out, never trained on.")


class Elastic(ApiModel):
    min_workers: int = Field(1, ge=1, le=1024, description="Fewest workers the job may run with.")
    max_workers: int = Field(4, ge=1, le=1024, description="Most workers the job may run with.")
    max_restarts: int = Field(
        3, ge=0, le=1_000_000, description="Failures (non-zero exits) tolerated; spot preemptions do not count."
    )
    rescale_cooldown: Duration = Field("2m", description="Least time between two rescales.")
    ready_timeout: Duration = Field(
        "60s", description="A world (or its rendezvous) not ready this long after launch is reported stuck: "
        "condition Ready=False and an event naming what each pod waits for. Nothing is restarted for it.")


class Budget(ApiModel):
    max_total_cost: float | None = Field(None, gt=0, description="USD for the whole job.")
    max_cost_per_hour: float | None = Field(None, gt=0, description="USD per hour at any moment.")


class Objective(ApiModel):
    deadline: datetime | None = Field(None, description="RFC 3339 time by which the job must finish.")
    max_duration: Duration | None = Field(None, description="Alternative to deadline: from creation.")
    mode: Mode = Field(Mode.MIN_COST, description="MinCost, MinTime or Balanced.")
    budget: Budget = Field(default_factory=Budget)
    min_scaling_efficiency: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Do not add a worker whose marginal throughput is below this fraction of its share.",
    )


class Toleration(ApiModel):
    key: QualifiedName | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: Int64 | None = Field(None, ge=0, description="Only with effect NoExecute.")


class CapacityPool(ApiModel):
    enabled: bool = Field(True, description="Whether workers may run on this capacity.")
    node_selector: Labels = Field(default_factory=dict, description="Placement labels.")
    tolerations: list[Toleration] = Field(default_factory=list)
    price_per_hour: float | None = Field(None, ge=0, description="USD per worker-hour (Static pricing).")


class SpotCapacity(CapacityPool):
    node_selector: Labels = Field(
        default_factory=lambda: {"karpenter.sh/capacity-type": "spot"}, description="Placement labels."
    )


class OnDemandCapacity(CapacityPool):
    node_selector: Labels = Field(
        default_factory=lambda: {"karpenter.sh/capacity-type": "on-demand"}, description="Placement labels."
    )


class Pricing(ApiModel):
    source: PricingSource = Field(PricingSource.STATIC, description="Static, ConfigMap or Prometheus.")
    config_map_name: DnsSubdomain | None = Field(
        None, description="ConfigMap with keys spotPricePerHour and onDemandPricePerHour."
    )
    spot_query: str | None = Field(None, description="PromQL returning the spot price per hour.")
    on_demand_query: str | None = Field(None, description="PromQL returning the on-demand price.")


class Capacity(ApiModel):
    spot: SpotCapacity = Field(default_factory=SpotCapacity)
    on_demand: OnDemandCapacity = Field(default_factory=OnDemandCapacity)
    pricing: Pricing = Field(default_factory=Pricing)


class CheckpointVolume(ApiModel):
    """Where checkpoints live. With none of claimName, emptyDir, hostPath set, the operator creates a
    ReadWriteMany PersistentVolumeClaim `NAME-checkpoints` of `size` that outlives every worker."""

    claim_name: DnsSubdomain | None = Field(
        None, description="An existing PersistentVolumeClaim shared by all workers.")
    empty_dir: bool = Field(False, description="An emptyDir (tests only: lost with the pod).")
    host_path: str | None = Field(None, description="A node directory (kind clusters with a shared mount).")
    size: Quantity = Field("10Gi", description="Size of the claim the operator creates.")
    storage_class_name: DnsSubdomain | None = Field(
        None, description="Storage class of the claim the operator creates.")


class Checkpoint(ApiModel):
    volume: CheckpointVolume = Field(default_factory=CheckpointVolume)
    interval_steps: Int64 | None = Field(100, ge=1, description="Save every N steps.")
    interval_seconds: Int64 | None = Field(None, ge=1, description="Save at least this often.")
    keep: int = Field(3, ge=1, le=1000, description="Checkpoints retained.")


class Metrics(ApiModel):
    prometheus_url: str | None = Field(
        None, alias="prometheusURL", description="Read throughput here; else scrape workers directly."
    )
    port: int = Field(9400, ge=1, le=65535, description="Workers' /metrics port.")


class ThroughputPrior(ApiModel):
    samples_per_second: float = Field(
        gt=0, description="Expected samples/s of one worker, used before anything is measured."
    )
    serial_fraction: float = Field(
        0.05, ge=0, lt=1, description="Amdahl serial fraction: how sublinearly workers scale."
    )
    restart_seconds: float | None = Field(
        None, gt=0, le=86400,
        description="Expected seconds a restart costs (save, reschedule, load) until one is measured; default 60.",
    )


class FineTuneJobSpec(ApiModel):
    image: str = Field(DEFAULT_TRAINER_IMAGE, min_length=1, description="Trainer image.")
    command: list[str] | None = Field(None, description="Overrides the torchrun command.")
    args: list[str] | None = Field(None, description="Extra arguments for the trainer.")
    env: list[EnvVar] = Field(default_factory=list)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    nproc_per_worker: int = Field(1, ge=1, le=64, description="Processes (GPUs) per worker pod.")
    model: str = Field(
        BUILTIN_MODEL,
        min_length=1,
        description="builtin:gpt-tiny, a Hugging Face model directory, or package:MODULE[/PATH], a model shipped "
        "inside an installed Python package.",
    )
    task: Task = Field(Task.CAUSAL_LM, description="causal-lm, or classification of labelled CSV rows.")
    classification: Classification | None = Field(None, description="Required when task is classification.")
    dataset: str | None = Field(
        None, description="Text file or directory (a CSV for classification), or package:MODULE/PATH; default: "
        "built-in corpus."
    )
    seq_len: int = Field(64, ge=8, le=32768, description="Tokens per sample.")
    total_steps: Int64 | None = Field(None, ge=1, description="Optimiser steps to run (or epochs).")
    epochs: Int64 | None = Field(None, ge=1, description="Passes over the dataset (or totalSteps).")
    global_batch_size: int = Field(
        ge=1, le=2**31 - 1, description="Samples per optimiser step, constant whatever the number of workers."
    )
    micro_batch_size: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Largest per-process batch; gradient accumulation covers the rest."
    )
    learning_rate: float = Field(3e-4, gt=0, le=10)
    lora: LoRA | None = None
    precision: Precision = Precision.FP32
    seed: Int64 = Field(0, ge=0)
    elastic: Elastic = Field(default_factory=Elastic)
    objective: Objective = Field(default_factory=Objective)
    capacity: Capacity = Field(default_factory=Capacity)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    metrics: Metrics = Field(default_factory=Metrics)
    throughput_prior: ThroughputPrior | None = Field(
        None, description="Expected throughput before measurement (planning, budget checks)."
    )
    suspend: bool = Field(False, description="Checkpoint and stop the workers; false resumes.")


class ObjectMeta(BaseModel):
    """The part of ObjectMeta the API checks; the rest passes through untouched."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        min_length=1, max_length=52, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Short enough that child names (`NAME-g12-w15`) stay valid DNS labels.",
    )
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# --- status ---------------------------------------------------------------------------------------


class Condition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class Workers(ApiModel):
    desired: int = 0
    ready: int = 0
    spot: int = 0
    on_demand: int = 0
    summary: str = Field("0", description="`ready/desired (spot+onDemand)` for printer columns.")


class ThroughputPoint(ApiModel):
    workers: int
    samples_per_second: float


class Throughput(ApiModel):
    current: float = Field(0.0, description="Samples/s now.")
    curve: list[ThroughputPoint] = Field(default_factory=list, description="Measured workers → samples/s.")


class Cost(ApiModel):
    accrued: float = Field(0.0, description="USD spent so far.")
    rate_per_hour: float = Field(0.0, description="USD per hour at the current size.")
    projected_total: float = Field(0.0, description="Accrued plus the projected rest.")
    updated_time: datetime | None = Field(None, description="When accrued was last brought up to date.")


class LastCheckpoint(ApiModel):
    step: int = 0
    time: datetime | None = None
    path: str = ""
    rejected_step: int = Field(
        0, description="Newest checkpoint step the trainer refused to load (damaged, or another job's) and set "
        "aside as rejected-step-N; 0: none.")


class SpotRun(ApiModel):
    workers: int = Field(description="Spot workers obtainable during this run.")
    seconds: float = Field(description="How long the count held.")


class SpotObservation(ApiModel):
    """What the policy has seen of spot availability: the current count, since when, and the past runs."""

    available: int | None = None
    since: datetime | None = None
    history: list[SpotRun] = Field(default_factory=list, description="Completed runs, oldest first (capped).")
    unschedulable_workers: int | None = Field(
        None, description="Spot workers that could not all be scheduled at once (the scheduler said why), "
        "so fewer are offered to the policy for a while instead of trying this size again and again.")
    unschedulable_since: datetime | None = None
    unschedulable_strikes: int = Field(0, description="Generations in a row whose spot pods of that size stayed "
                                       "unschedulable; from 2 on, the size is not offered until the memory passes.")


class FineTuneJobStatus(ApiModel):
    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int = 0
    workers: Workers = Field(default_factory=Workers)
    generation: int = Field(0, description="World-membership generation (bumps on every rescale).")
    step: int = 0
    total_steps: int = 0
    loss: float | None = Field(None, description="Training loss last reported by the workers.")
    progress: str = Field("0%", description="step / totalSteps as a percentage.")
    throughput: Throughput = Field(default_factory=Throughput)
    cost: Cost = Field(default_factory=Cost)
    eta: str | None = Field(None, description="Time left at the current rate, e.g. 12m30s.")
    estimated_completion_time: datetime | None = None
    deadline_slack: str | None = Field(None, description="Time to spare at the current rate, e.g. 3h10m.")
    last_checkpoint: LastCheckpoint = Field(default_factory=LastCheckpoint)
    preemptions: int = Field(0, description="Workers taken from outside the job: reclaimed, deleted (not by the "
                             "operator) or vanished, on either capacity. They never count against maxRestarts.")
    preempted_pods: list[str] = Field(default_factory=list, description="Pods already counted in preemptions "
                                      "(the newest 64), so that none is counted twice.")
    restarts: int = Field(0, description="Worker failures (non-zero exits of the job's own containers).")
    rescales: int = 0
    last_decision: str = ""
    launched_generation: int = Field(0, description="Latest generation whose pods were all created.")
    last_rescale_time: datetime | None = Field(None, description="When the current generation was decided.")
    launch_not_before: datetime | None = Field(
        None, description="The current generation's pods are not created before this time (a failure's backoff)."
    )
    spot: SpotObservation = Field(default_factory=SpotObservation)
    restart_overhead_seconds: float = Field(
        0.0, description="Measured time from a rescale decision to the new world running (the policy's d)."
    )
    start_time: datetime | None = None
    completion_time: datetime | None = None


class FineTuneJob(ApiModel):
    api_version: Literal["elasticft.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["FineTuneJob"]
    metadata: ObjectMeta
    spec: FineTuneJobSpec
    status: FineTuneJobStatus | None = None

