"""What only a CUDA device can check, on the real Trainer: bf16 autocast, channels_last, torch.compile without
recompiling in steady state, and a training step that never waits for the device.

Every test here carries the ``cuda`` marker: skipped without CUDA (tests/conftest.py), selected by
``pytest -m cuda``, and run on a GPU machine by ``benchmarks/gpu_suite.sh``.
"""

import pytest
import torch

from emnist_dist.config import parse_config
from emnist_dist.train.trainer import Trainer

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # the synthetic glyphs are rendered once for the module


def make_trainer(cache_dir, out, *flags: str) -> Trainer:
    """A small CUDA run: synthetic Balanced, timm ``test_resnet`` at 32 px, the random affine on, bf16."""
    cfg = parse_config([
        "--data.split", "balanced", "--data.source", "synthetic", "--data.cache_dir", str(cache_dir),
        "--data.synthetic_train_per_class", "40", "--data.synthetic_test_per_class", "10", "--data.image_size", "32",
        "--augment.degrees", "10", "--augment.translate", "0.1", "--augment.scale", "0.1", "--augment.shear", "5",
        "--model.name", "test_resnet", "--train.batch_size", "32", "--train.epochs", "1",
        "--train.mixed_precision", "bf16", "--log.trackers", "[]", "--log.progress", "false",
        "--output_dir", str(out), *flags,
    ])
    trainer = Trainer(cfg)
    assert trainer.device.type == "cuda"
    return trainer


def first_conv(network: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d))


def inner_conv(network: torch.nn.Module) -> torch.nn.Conv2d:
    """A convolution over several channels with a spatial kernel: there channels_last differs from the default
    layout (for one channel, or a 1x1 kernel, both layouts are the same strides)."""
    return next(m for m in network.modules()
                if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size[0] > 1)


def test_bf16_autocast_step_computes_in_bf16_and_keeps_fp32_weights(cache_dir, tmp_path):
    trainer = make_trainer(cache_dir, tmp_path / "run")
    seen = []
    first_conv(trainer.network).register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    loss = trainer.train_step()
    assert seen == [torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    assert torch.isfinite(loss).item() and trainer.state.step == 1


def test_channels_last_weights_and_activations(cache_dir, tmp_path):
    trainer = make_trainer(cache_dir, tmp_path / "run")
    conv = inner_conv(trainer.network)
    inputs = []
    conv.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    trainer.train_step()
    (x,) = inputs
    assert x.is_cuda and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous() and conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_compiled_model_does_not_recompile_in_steady_state(cache_dir, tmp_path):
    """The first compile, then at most one recompile around the first train -> eval -> train switch;
    after that, more steps and another validation must reuse the compiled code."""
    trainer = make_trainer(cache_dir, tmp_path / "run", "--model.compile", "true")
    assert trainer.model is not trainer.network  # the compiled wrapper trains; the plain module is evaluated
    trainer.train_step()
    trainer.train_step()
    trainer.validate()
    trainer.train_step()
    with torch.compiler.set_stance("fail_on_recompile"):
        for _ in range(3):
            trainer.train_step()
        trainer.validate()
        loss = trainer.train_step()
    assert torch.isfinite(loss).item()


def test_train_step_never_waits_for_the_device(cache_dir, tmp_path):
    """Under set_sync_debug_mode("error") any host sync (.item(), a blocking copy, nonzero) raises."""
    trainer = make_trainer(cache_dir, tmp_path / "run", "--model.ema", "true", "--train.clip_grad_norm", "1.0")
    trainer.train_step()  # the epoch's first batch copies its permutation to the device once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [trainer.train_step() for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(torch.stack(losses)).all().item()
