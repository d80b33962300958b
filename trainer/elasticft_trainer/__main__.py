"""`python -m elasticft_trainer`: the worker program torchrun launches on every rank."""

import sys

from .train import main

sys.exit(main())
