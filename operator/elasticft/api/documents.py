"""Reading FineTuneJob YAML files: one or many documents, every problem reported, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from elasticft.api.models import FineTuneJob
from elasticft.api.validation import FieldError, validate_document


@dataclass
class CheckedDocument:
    """One YAML document of a file and what validation made of it."""

    source: str
    index: int
    job: FineTuneJob | None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.source}[{self.index}]" if self.index else self.source


class InvalidJobError(ValueError):
    """A file that does not hold only valid FineTuneJobs; the message lists every error."""

    def __init__(self, documents: list[CheckedDocument]) -> None:
        lines = [f"{d.label}: {e}" for d in documents for e in d.errors]
        super().__init__("\n".join(lines))
        self.documents = documents


def check_text(text: str, source: str, now: datetime) -> list[CheckedDocument]:
    """Validate every document of a YAML text; YAML syntax errors and empty input become errors."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [CheckedDocument(source, 0, None, [FieldError("(yaml)", f"{where}not valid YAML: {problem}")])]
    if not documents:
        return [CheckedDocument(source, 0, None, [FieldError("(file)", "contains no YAML document")])]
    checked = []
    for index, document in enumerate(documents):
        job, errors = validate_document(document, now)
        checked.append(CheckedDocument(source, index if len(documents) > 1 else 0, job, errors))
    return checked


def check_file(path: Path, now: datetime) -> list[CheckedDocument]:
    """Validate a file (see check_text); an unreadable file is an error, not an exception."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [CheckedDocument(str(path), 0, None, [FieldError("(file)", f"cannot be read: {exc}")])]
    return check_text(text, str(path), now)


def load_finetunejobs(path: Path | str, now: datetime | None = None) -> list[FineTuneJob]:
    """Every FineTuneJob in a YAML file, validated; InvalidJobError lists all problems otherwise."""
    checked = check_file(Path(path), now or datetime.now(UTC))
    if any(d.errors for d in checked):
        raise InvalidJobError(checked)
    return [d.job for d in checked if d.job is not None]
