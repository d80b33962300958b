"""The one logging setup of the `elasticft` package: every entry point calls `setup_logging`."""

from __future__ import annotations

import logging
import sys


class _PlainHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `setup_logging` installs for the commands other than the operator (replaceable)."""


def setup_logging(verbose: bool = False, *, operator: bool = False) -> None:
    """Configure the root logger once per process; calling it again replaces what it installed.

    The operator (`elasticft run`) logs through kopf's formatter, the one kopf's own records use: INFO,
    DEBUG with `verbose` (each reconcile pass then logs which stage ended it and why). Without
    `verbose`, kopf's per-object lines are kept at WARNING: a timer per job fires every few seconds and
    its "succeeded" lines would bury everything else. The other commands print their results and log
    only warnings, to stderr.
    """
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _PlainHandler)]
    if operator:
        import kopf  # here, not at the top: `elasticft validate` does not pay for kopf

        kopf.configure(verbose=verbose)
        logging.getLogger("kopf.objects").setLevel(logging.NOTSET if verbose else logging.WARNING)
        return
    handler = _PlainHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
