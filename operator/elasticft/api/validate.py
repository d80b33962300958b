"""`elasticft validate FILE...`: exit 0 and a summary line per valid job, or exit 1 and every error."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from elasticft.api.documents import check_file
from elasticft.api.models import FineTuneJob


def summary(job: FineTuneJob) -> str:
    """One line a user can check against what they meant to write."""
    spec = job.spec
    length = f"{spec.total_steps} steps" if spec.total_steps else f"{spec.epochs} epochs"
    objective = spec.objective
    when = (
        f"deadline {objective.deadline.isoformat()}" if objective.deadline
        else f"within {objective.max_duration}" if objective.max_duration else "no deadline"
    )
    pools = [name for name, pool in (("spot", spec.capacity.spot), ("on-demand", spec.capacity.on_demand))
             if pool.enabled]
    return (
        f"FineTuneJob {job.metadata.namespace or 'default'}/{job.metadata.name}: model {spec.model}, "
        f"{length} × {spec.global_batch_size} samples, {spec.elastic.min_workers}-{spec.elastic.max_workers} "
        f"workers on {'+'.join(pools)}, {objective.mode}, {when}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="elasticft validate", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    failed = False
    for path in args.files:
        for document in check_file(path, now):
            if document.job is not None:
                print(f"{document.label}: valid: {summary(document.job)}")
            for error in document.errors:
                failed = True
                print(f"{document.label}: {error}", file=sys.stderr)
    return 1 if failed else 0
