"""`elasticft run`: the operator process (kopf) with its own /metrics."""

from __future__ import annotations

import argparse
import os

import kopf
from prometheus_client import start_http_server

from elasticft.logs import setup_logging


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="elasticft run", description="Run the ElasticFT operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch FineTuneJobs everywhere")
    scope.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    # Standalone is the default because the chart runs exactly one replica (strategy Recreate): every
    # reconcile re-reads the world, so a restart costs a few seconds of delay and no state. Peering is
    # the choice for an active/standby pair: it needs kopf's KopfPeering (namespaced) or
    # ClusterKopfPeering (--all-namespaces) CRD, an object of that name, RBAC to read and patch it, and
    # a distinct --priority per replica (kopf pauses every operator of the highest priority when two
    # share it). The chart installs none of that.
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--standalone", dest="peering", action="store_const", const=None,
                         help="no peering: this is the only operator (default; the chart runs one replica)")
    peering.add_argument("--peering", dest="peering", metavar="NAME", default=None,
                         help="coordinate with other replicas through kopf's peering object NAME: the one of "
                              "highest --priority reconciles, the others wait")
    parser.add_argument("--priority", type=int, default=0,
                        help="this replica's peering priority (give every replica its own; only with --peering)")
    parser.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics-port", type=int, default=9090, help="operator /metrics port (0 = off)")
    parser.add_argument("--metrics-address", default="0.0.0.0",
                        help="address /metrics listens on (the chart gives the pod IP)")
    parser.add_argument("--interval", type=float, default=None, help="seconds between reconciles of a job")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="debug logging: every reconcile pass says which stage ended it and why")
    args = parser.parse_args(argv)
    if args.priority and args.peering is None:
        parser.error("--priority needs --peering NAME")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.interval is not None:
        os.environ["ELASTICFT_RECONCILE_INTERVAL"] = str(args.interval)
    from elasticft.controller import handlers  # noqa: F401  registers the handlers (after the interval is set)
    from elasticft.controller.kube import load_config

    setup_logging(args.verbose, operator=True)
    load_config()  # before kopf starts: its startup handler makes the API client from this configuration
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_address)
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority,
        clusterwide=args.all_namespaces or not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0
