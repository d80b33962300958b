"""Sequence classification: labelled CSV rows, and a Hugging Face encoder with a freshly initialised head.

A sample is one CSV row (its text tokenized to `seq_len`, padded) and its class index. The model's
forward gives logits of shape (batch, 1, classes), so the trainer's token loss, its loss scaling and
the exact-resume sampler apply unchanged: a row is a one-target sample (`targets_per_sample = 1`).

The rows are split once, by a fixed seed that does not depend on the training seed, into the rows the
trainer sees and `eval_fraction` held-out rows it never trains on; `evaluate` scores a model on those.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainerConfig
from .data import SampleRef, packaged_path
from .model import model_directory, with_lora

#: The train / held-out split is the same for every run over the same rows.
SPLIT_SEED = 20240
Split = Literal["train", "eval"]


@dataclass(frozen=True)
class LabelledTexts:
    """Tokenized rows (N, seq_len), padded with the tokenizer's pad id, and their class indices (N,)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def targets_per_sample(self) -> int:
        """Predictions the loss sums over in one sample: its class."""
        return 1

    def batch(self, samples: list[SampleRef]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (len(samples), seq_len) and targets (len(samples), 1)."""
        rows = torch.tensor([s.index for s in samples], dtype=torch.long)
        return self.input_ids[rows], self.labels[rows][:, None]


def read_labelled_rows(config: TrainerConfig) -> tuple[list[str], list[int]]:
    """Texts and class indices of the rows whose label is one of `config.labels`, in file order."""
    path = packaged_path(config.dataset)
    classes = {name: index for index, name in enumerate(config.label_list)}
    reader = csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8", errors="replace"), newline=""))
    missing = {config.text_column, config.label_column} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{config.dataset}: no column {sorted(missing)}; columns are {reader.fieldnames}")
    texts, labels = [], []
    for row in reader:
        label = classes.get(row[config.label_column].strip())
        if label is not None and row[config.text_column].strip():
            texts.append(row[config.text_column])
            labels.append(label)
    if not texts:
        raise ValueError(f"{config.dataset}: no row is labelled with one of {config.label_list}")
    return texts, labels


def split_rows(num_rows: int, eval_fraction: float, split: Split) -> list[int]:
    """Row indices of one side of the split: a seeded permutation, whose first share is held out."""
    order = np.random.default_rng(SPLIT_SEED).permutation(num_rows)
    held_out = round(num_rows * eval_fraction)
    chosen = order[:held_out] if split == "eval" else order[held_out:]
    return sorted(int(i) for i in chosen)


def build_labelled_texts(config: TrainerConfig, split: Split) -> LabelledTexts:
    """One side of the split, tokenized with the model's own tokenizer."""
    from transformers import AutoTokenizer

    texts, labels = read_labelled_rows(config)
    rows = split_rows(len(texts), config.eval_fraction, split)
    if not rows:
        raise ValueError(f"{config.dataset}: the {split} split is empty (eval_fraction {config.eval_fraction})")
    tokenizer = AutoTokenizer.from_pretrained(model_directory(config.model))
    encoded = tokenizer([texts[i] for i in rows], padding="max_length", truncation=True,
                        max_length=config.seq_len, return_tensors="pt")
    return LabelledTexts(encoded["input_ids"], torch.tensor([labels[i] for i in rows], dtype=torch.long),
                         tuple(config.label_list))


class ClassifierLogits(nn.Module):
    """A transformers sequence classifier (maybe peft-wrapped) as ids -> logits (batch, 1, classes).

    Padding is masked out of attention by its id, which encoders keep distinct from real tokens.
    """

    def __init__(self, classifier: nn.Module, pad_token_id: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.pad_token_id = pad_token_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        attention_mask = (input_ids != self.pad_token_id).long()
        logits: torch.Tensor = self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[:, None, :]


def build_classifier(config: TrainerConfig) -> nn.Module:
    """The pretrained encoder with a new `len(labels)`-way head; with LoRA the head trains in full."""
    from transformers import AutoModelForSequenceClassification

    directory = model_directory(config.model)
    pretrained = AutoModelForSequenceClassification.from_pretrained(
        directory, num_labels=len(config.label_list), dtype=torch.float32
    )
    pad_token_id: int | None = pretrained.config.pad_token_id
    classifier: nn.Module = pretrained
    if config.lora_rank > 0:
        # SEQ_CLS makes peft keep the new head trainable (and checkpointed) beside the adapters.
        classifier = with_lora(pretrained, config, None, task_type="SEQ_CLS")
    return ClassifierLogits(classifier, int(pad_token_id or 0))


@dataclass(frozen=True)
class ClassifierScore:
    """A model's held-out loss and metrics."""

    loss: float
    accuracy: float
    #: Mean of the per-class recalls: 1 / classes for a constant guess, whatever the class balance.
    balanced_accuracy: float


@torch.no_grad()
def evaluate(model: nn.Module, texts: LabelledTexts, batch_size: int = 128) -> ClassifierScore:
    """Mean cross-entropy, accuracy and balanced accuracy over every row of `texts`."""
    was_training = model.training
    model.eval()
    loss_sum, predictions = 0.0, []
    for start in range(0, texts.num_samples, batch_size):
        inputs = texts.input_ids[start : start + batch_size]
        logits = model(inputs)[:, 0, :].float()
        loss_sum += float(F.cross_entropy(logits, texts.labels[start : start + batch_size], reduction="sum"))
        predictions.append(logits.argmax(dim=1))
    model.train(was_training)
    predicted = torch.cat(predictions)
    correct = predicted == texts.labels
    recalls = [float(correct[texts.labels == c].float().mean()) for c in torch.unique(texts.labels)]
    return ClassifierScore(loss_sum / texts.num_samples, float(correct.float().mean()), float(np.mean(recalls)))
