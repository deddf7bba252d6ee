"""A small model really trained on synthetic digit glyphs, exported like a training run's ``model/``.

Registered for every test module by tests/conftest.py (``pytest_plugins``).
Training timm's ``test_resnet`` at 32x32 on 3,000 rendered digits for 4 epochs takes
a few seconds on one CPU thread and reaches ~99% on fresh renders.
"""

from __future__ import annotations

import string

import pytest
import torch
import timm
import torch.nn.functional as F

from emnist_dist.data.synthetic import render_glyphs
from emnist_dist.model_folder.artifact import ModelInfo, save_model
from emnist_dist.model_folder.framing import measure_framing
from emnist_dist.data.resize import resize_to_float, to_model_input

ARCH = "test_resnet"
IMAGE_SIZE = 32
DIGITS = list(string.digits)


def train_digit_model(seed: int = 0, per_class: int = 300, epochs: int = 4, batch: int = 64):
    """Train ``ARCH`` on rendered digits with a plain loop; returns (model in eval mode, ModelInfo)."""
    torch.manual_seed(seed)
    images, labels = render_glyphs(DIGITS, per_class, seed=seed + 100)
    images, labels = torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels)
    resized = resize_to_float(images, IMAGE_SIZE)
    mean, std = float(resized.mean()), float(resized.std())
    x = to_model_input(images, IMAGE_SIZE, mean, std)
    model = timm.create_model(ARCH, in_chans=1, num_classes=len(DIGITS))
    steps = epochs * (len(x) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x) - batch + 1, batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(x[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    info = ModelInfo(architecture=ARCH, class_names=DIGITS, image_size=IMAGE_SIZE, mean=mean, std=std,
                     split="digits", source="synthetic", framing=measure_framing(images))
    return model, info


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory):
    """Folder of an exported, trained digit model (model.safetensors + config.json)."""
    # One thread: as fast as two for this tiny network, and 10x faster than two on a busy 2-core machine
    # (measured 18 s vs 180 s while other processes ran), where OpenMP threads fight for the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, info = train_digit_model()
    finally:
        torch.set_num_threads(threads)
    test_images, test_labels = render_glyphs(DIGITS, 30, seed=7)
    with torch.inference_mode():
        logits = model(to_model_input(torch.from_numpy(test_images).unsqueeze(1), IMAGE_SIZE, info.mean, info.std))
    info.metrics = {"test/acc": float((logits.argmax(1) == torch.from_numpy(test_labels)).float().mean())}
    return save_model(model, tmp_path_factory.mktemp("trained") / "model", info)
