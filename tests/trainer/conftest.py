"""Fixtures of the trainer tests (defined in trainer_harness, whose helpers the tests also import)."""

from trainer_harness import cluster, rendezvous_store, small_corpus

__all__ = ["cluster", "rendezvous_store", "small_corpus"]
