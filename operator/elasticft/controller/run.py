"""`elasticft run`: the operator process (kopf) with its own /metrics."""

from __future__ import annotations

import argparse
import logging
import os

import kopf
from prometheus_client import start_http_server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="elasticft run", description="Run the ElasticFT operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch FineTuneJobs everywhere")
    scope.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    parser.add_argument("--standalone", action="store_true", default=True,
                        help="no peering: one replica (the chart runs exactly one, strategy Recreate)")
    parser.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics-port", type=int, default=9090, help="operator /metrics port (0 = off)")
    parser.add_argument("--interval", type=float, default=None, help="seconds between reconciles of a job")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    if args.interval is not None:
        os.environ["ELASTICFT_RECONCILE_INTERVAL"] = str(args.interval)
    from elasticft.controller import handlers  # registers the handlers (after the interval is set)
    from elasticft.controller.kube import load_config

    load_config()
    handlers.kube()
    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.configure(verbose=args.verbose)
    if not args.verbose:
        # A timer per job fires every few seconds; its "succeeded" lines would bury everything else.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        standalone=args.standalone,
        clusterwide=args.all_namespaces or not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0
