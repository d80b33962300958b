"""What the user writes: the FineTuneJob API, its validation and its CRD."""

from elasticft.api.documents import InvalidJobError, check_file, check_text, load_finetunejobs
from elasticft.api.models import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    FineTuneJob,
    FineTuneJobSpec,
    FineTuneJobStatus,
    Phase,
)
from elasticft.api.validation import FieldError, feasible_world_sizes, semantic_errors, validate_document
from elasticft.types import Mode

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "FieldError",
    "FineTuneJob",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "InvalidJobError",
    "Mode",
    "Phase",
    "check_file",
    "check_text",
    "feasible_world_sizes",
    "load_finetunejobs",
    "semantic_errors",
    "validate_document",
]
