"""The one logging setup of the trainer package, called first by each of its entry points.

Lines go to stderr as `<asctime> [rank=<rank> ]<LEVEL> <logger>: <message>`. The sandbox, the demo
report and the benches read the time stamp, the rank and the logger name back out of worker logs, so
the shape is a contract; only a training rank carries the `rank=` tag.
"""

from __future__ import annotations

import logging
import sys


def configure_logging(rank: int | None = None) -> None:
    """Log INFO and above to stderr, tagged with `rank` when the process is a training rank."""
    rank_tag = "" if rank is None else f"rank={rank} "
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {rank_tag}%(levelname)s %(name)s: %(message)s",
    )
