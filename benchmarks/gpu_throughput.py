"""Training throughput of the recipe's model: EfficientNet-B3 at 112 px, bf16 + channels_last.

Prints images/s, the implied epoch time on ByClass (697,932 training images) and an estimated
model-FLOPs utilisation (MFU: training FLOPs (3x the counted forward) per second over the device's dense bf16 peak),
with and without ``torch.compile``. Each step is the trainer's: device batch -> resize -> normalise
-> MixUp/CutMix -> weighted KL -> Lion.

    python -m benchmarks.gpu_throughput [--batch-size 256] [--steps 50] [--peak-tflops 989]

On a machine without CUDA it runs a short fp32 CPU pass (to check the script) and says so.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from emnist_dist.train.loss import WeightedKLDivLoss
from emnist_dist.train.mixup import MixUpCutMix
from emnist_dist.train.network import create_model
from emnist_dist.train.optim import build_optimizer
from emnist_dist.data.resize import resize_to_float

from .timing import calls_per_s

BYCLASS_TRAIN = 697_932
NUM_CLASSES = 62
# Dense bf16 peak TFLOP/s by device name (vendor datasheets); override with --peak-tflops.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for key, v in PEAK_BF16_TFLOPS.items() if key in name), None)


def train_step_flops(model, batch: torch.Tensor) -> int:
    """FLOPs of one training step: 3x the forward FLOPs counted by PyTorch's FlopCounterMode.

    The usual convention (backward ~ 2x forward). Counting the backward pass directly does not work
    here: FlopCounterMode's convolution-backward formula ignores groups, so EfficientNet's depthwise
    convolutions come out dense (measured: 23.9 GFLOP for fwd+bwd against 0.53 for fwd at 112 px).
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(batch)
    return 3 * counter.get_total_flops()


def measure(args, device: torch.device, compile_model: bool) -> tuple[float, int]:
    torch.manual_seed(0)
    model = create_model(args.model, NUM_CLASSES, drop_rate=0.3, drop_path_rate=0.2).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = WeightedKLDivLoss(torch.ones(NUM_CLASSES)).to(device)
    optimizer = build_optimizer(model, "lion", lr=1e-4, weight_decay=0.1)
    mixer = MixUpCutMix(NUM_CLASSES, seed=0)
    images = torch.randint(0, 256, (args.batch_size * 4, 1, 28, 28), dtype=torch.uint8, device=device)
    labels = torch.randint(0, NUM_CLASSES, (args.batch_size * 4,), device=device)
    dtype = torch.bfloat16 if use_cuda else torch.float32
    flops = train_step_flops(model, resize_to_float(images[:args.batch_size], args.image_size))
    net = torch.compile(model) if compile_model else model

    def step() -> None:
        idx = torch.randint(0, len(labels), (args.batch_size,), device=device)
        x = (resize_to_float(images[idx], args.image_size) - 0.17) / 0.33
        if use_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        x, targets = mixer(x, labels[idx])
        with torch.autocast(device.type, dtype=dtype, enabled=use_cuda):
            logits = net(x)
        loss_fn(logits.float(), targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return args.batch_size * calls_per_s(step, args.steps, args.warmup, device), flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_b3")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    args = parser.parse_args()
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name()
        torch.backends.cudnn.benchmark = True
    else:
        device, name = torch.device("cpu"), "CPU (no CUDA device: fp32, a few steps, to check the script only)"
        args.batch_size, args.steps, args.warmup, args.no_compile = 16, 2, 1, True
    peak = peak_tflops(name, args.peak_tflops)
    print(f"{args.model} @ {args.image_size}px, batch {args.batch_size}, device {name}")
    for compile_model in (False,) if args.no_compile else (False, True):
        images_per_s, flops = measure(args, device, compile_model)
        achieved = images_per_s / args.batch_size * flops / 1e12
        mfu = f"{100 * achieved / peak:.1f}% of {peak:.0f} TFLOP/s" if peak and device.type == "cuda" else "n/a"
        print(f"compile={compile_model}: {images_per_s:.0f} images/s, ByClass epoch {BYCLASS_TRAIN / images_per_s:.0f} s, "
              f"{flops / args.batch_size / 1e9:.2f} GFLOP/image (fwd+bwd), {achieved:.1f} TFLOP/s, MFU {mfu}")


if __name__ == "__main__":
    main()
