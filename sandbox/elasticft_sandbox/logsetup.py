"""The one logging setup of the sandbox's entry points (`elasticft sandbox ...`,
`python -m elasticft_sandbox.apiserver`, `python -m elasticft_sandbox.standin`): one format, to a file
or to stderr. Library code only ever calls `logging.getLogger(__name__)`."""

from __future__ import annotations

import logging
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def configure_logging(log_file: Path | None = None, level: int = logging.INFO) -> None:
    """Send the root logger's records at `level` and above to `log_file` (appended), or to stderr."""
    logging.basicConfig(filename=log_file, level=level, format=LOG_FORMAT)
