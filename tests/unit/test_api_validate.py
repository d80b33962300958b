"""`elasticft validate` and the FineTuneJob models: what a user sees for good and bad files."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from elasticft.api import feasible_world_sizes, load_finetunejobs, validate_document
from elasticft.api.durations import format_duration, parse_duration
from elasticft.api.validate import main as validate_main

REPO = Path(__file__).resolve().parents[2]
INVALID = sorted((REPO / "tests" / "data" / "invalid").glob("*.yaml"))
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def expected_path(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            return line.removeprefix("# expect: ").strip()
    raise AssertionError(f"{path} has no '# expect:' line")


def test_invalid_corpus_is_large_enough() -> None:
    assert len(INVALID) >= 30


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_with_exit_0(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid: FineTuneJob" in out


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_file_exits_1_naming_the_field(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_main([str(path)]) == 1
    err = capsys.readouterr().err
    assert f": {expected_path(path)}: " in err, err
    assert "Traceback" not in err


def test_command_line_reports_errors_without_traceback(tmp_path: Path) -> None:
    bad = INVALID[0]
    missing = tmp_path / "missing.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "elasticft.cli", "validate", str(bad), str(missing), str(EXAMPLES[0])],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot be read" in result.stderr
    assert "valid: FineTuneJob" in result.stdout


def test_every_error_of_a_document_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = {
        "apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": "two"},
        "spec": {"totalSteps": 10, "globalBatchSize": 12, "precision": "fp8", "seed": -1},
    }
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert validate_main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "spec.precision:" in err and "spec.seed: must be >= 0 (got -1)" in err


def test_deadline_is_judged_against_the_given_time() -> None:
    deadline = datetime(2030, 1, 1, tzinfo=UTC)
    doc = {
        "apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": "d"},
        "spec": {"totalSteps": 10, "globalBatchSize": 4, "objective": {"deadline": deadline.isoformat()}},
    }
    job, errors = validate_document(doc, now=deadline - timedelta(hours=1))
    assert job is not None and not errors
    job, errors = validate_document(doc, now=deadline + timedelta(seconds=1))
    assert job is None
    assert [str(e).split(":")[0] for e in errors] == ["spec.objective.deadline"]


def test_defaults_are_what_a_user_expects() -> None:
    (job,) = load_finetunejobs(REPO / "examples" / "finetunejob-minimal.yaml")
    spec = job.spec
    assert (spec.elastic.min_workers, spec.elastic.max_workers) == (1, 4)
    assert spec.objective.mode == "MinCost"
    assert spec.capacity.spot.node_selector == {"karpenter.sh/capacity-type": "spot"}
    assert spec.capacity.on_demand.node_selector == {"karpenter.sh/capacity-type": "on-demand"}
    assert spec.checkpoint.volume.claim_name is None and not spec.checkpoint.volume.empty_dir
    assert spec.model == "builtin:gpt-tiny"


def test_feasible_world_sizes_split_the_global_batch_evenly() -> None:
    (job,) = load_finetunejobs(REPO / "examples" / "finetunejob-minimal.yaml")
    assert feasible_world_sizes(job.spec) == [1, 2, 3, 4]
    spec = job.spec.model_copy(update={"global_batch_size": 8})
    assert feasible_world_sizes(spec) == [1, 2, 4]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2.5h", 9000), ("250ms", 0.25)]
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_durations_format_round_trips() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"
    assert parse_duration(format_duration(3725)) == 3725
    with pytest.raises(ValueError, match="duration"):
        parse_duration("an hour")
