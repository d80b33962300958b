"""The `elasticft` command.

Each sub-command lives in the module that owns its layer and exposes `main(argv) -> int`;
this file only dispatches, importing lazily so that `elasticft validate` does not pay for kopf
or torch.
"""

from __future__ import annotations

import importlib
import sys

from elasticft.logs import setup_logging

COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("elasticft.api.validate", "check FineTuneJob YAML files and explain every error"),
    "crd": ("elasticft.api.crd", "print or write the FineTuneJob CustomResourceDefinition"),
    "plan": ("elasticft.sim.plan", "predict cost and completion time of a job under each policy"),
    "run": ("elasticft.controller.run", "run the operator (kopf) against the current kubeconfig"),
    "sandbox": ("elasticft_sandbox.cli", "local Kubernetes API, process kubelet and node pools"),
}


def usage() -> str:
    lines = ["usage: elasticft COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"elasticft: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    if module_name.startswith("elasticft."):
        # This package's commands share one logging setup (the operator's replaces it with kopf's);
        # the sandbox, a package of its own, sets up its own.
        setup_logging()
    module = importlib.import_module(module_name)
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
