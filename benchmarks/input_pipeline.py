"""Input-pipeline throughput: the on-device batch pipeline vs the classic per-image DataLoader, like for like.

On-device (this package): the split sits on the device as uint8; a batch is an index gather, then
resize (with the random affine fused into it, when on) -> normalize -> MixUp/CutMix, whole-batch
tensor ops. Per-image (the classic way): a torchvision-style dataset turning each uint8 glyph into
a PIL image, then Resize [-> RandomAffine] -> ToTensor -> Normalize, batched by a DataLoader with
worker processes, then timm's Mixup on the batch.

Two pairs, each with the same transforms on both sides: without the affine, and with it. Method:
both sides run on the same synthetic uint8 glyphs (throughput does not depend on the content) with
the same batch size; each measurement is ``--batches`` batches timed by one ``perf_counter`` span
(the device synchronised at both ends) after warm-up batches; the four pipelines take turns, round
after round (``--repeats``), so that load from elsewhere on the machine hits all of them alike. A
rate is the best of its rounds (as ``timeit`` does: slower rounds measure the neighbours), shown
with the range; each ratio is the best over the best, with the median and range of the ratios of
the two sides measured back to back in the same round. With CUDA it also times an EfficientNet-B3
training step (bf16, channels_last) at the same image size: the pipeline should outrun the model by
far (pipeline/model goal >= 50).
The last line is ``device/per-image ratio, same transforms: X`` for the augmented pair.

    python -m benchmarks.input_pipeline                 # about two minutes on a 2-core CPU
    python -m benchmarks.input_pipeline --device cuda --no-per-image --batches 100
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from PIL import Image
from timm.data import Mixup
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from emnist_dist.data.resize import normalize
from emnist_dist.train.augment import RandomAffine
from emnist_dist.train.batches import TrainLoader
from emnist_dist.train.mixup import MixUpCutMix

from .timing import calls_per_s

MEAN, STD = 0.17, 0.33  # EMNIST-like statistics; the values do not affect throughput
NUM_CLASSES = 62
# mild geometric augmentation, as torchvision's RandomAffine takes it
AFFINE = dict(degrees=10, translate=0.1, scale=0.1, shear=5)
WARMUP_BATCHES = 10  # more than a DataLoader's prefetch (2 x workers), so the timed span starts steady


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=60_000, help="synthetic training images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each pipeline is measured once a round")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-image pipeline")
    parser.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda")
    parser.add_argument("--per-image", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the per-image DataLoader too (--no-per-image: the on-device half only)")
    parser.add_argument("--model-steps", type=int, default=20, help="timed EfficientNet-B3 steps (CUDA only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model for the CUDA step timing")
    return parser.parse_args()


def device_pipeline(images, labels, args, device, affine: bool):
    """One batch of: index gather -> resize [+ random affine, one sampling] -> normalize -> MixUp/CutMix."""
    loader = TrainLoader(images, labels, args.batch_size, seed=0, device=device)
    augment = RandomAffine(**(AFFINE if affine else {}), seed=0)
    mixer = MixUpCutMix(NUM_CLASSES, seed=0)

    def batches():
        epoch = 0
        while True:
            loader.seek(epoch, 0)
            yield from loader
            epoch += 1

    stream = batches()

    def step():
        x, y = next(stream)
        return mixer(normalize(augment.resize(x, args.image_size), MEAN, STD), y)

    return step


class PerImageDataset(Dataset):
    """The classic torchvision-style dataset: one PIL image per sample, transformed on access."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int, affine: bool) -> None:
        self.images, self.labels = images, labels
        geometric = [T.RandomAffine(AFFINE["degrees"], translate=(AFFINE["translate"],) * 2,
                                    scale=(1 - AFFINE["scale"], 1 + AFFINE["scale"]), shear=AFFINE["shear"])]
        self.transform = T.Compose(
            [T.Resize(image_size), *(geometric if affine else []), T.ToTensor(), T.Normalize((MEAN,), (STD,))]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def per_image_pipeline(images, labels, args, device, affine: bool):
    """One batch of the per-image DataLoader (+ timm Mixup on the batch, on ``device``)."""
    dataset = PerImageDataset(images[:, 0].numpy(), labels.numpy(), args.image_size, affine)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    mixer = Mixup(mixup_alpha=0.22, cutmix_alpha=0.62, prob=0.8, switch_prob=0.5, label_smoothing=0.1,
                  num_classes=NUM_CLASSES)

    def batches():
        while True:
            yield from loader

    stream = batches()

    def step():
        x, y = next(stream)
        return mixer(x.to(device, non_blocking=True), y.to(device, non_blocking=True))

    return step


def time_model_step(args, device) -> float:
    """Images/s of an EfficientNet-B3 training step at ``image_size`` (bf16 autocast, channels_last)."""
    from emnist_dist.train.loss import WeightedKLDivLoss
    from emnist_dist.train.network import create_model
    from emnist_dist.train.optim import build_optimizer

    model = create_model("efficientnet_b3", NUM_CLASSES, drop_rate=0.3, drop_path_rate=0.2)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = build_optimizer(model, "lion", lr=1e-4, weight_decay=0.1)
    step_model = torch.compile(model) if args.compile else model
    loss_fn = WeightedKLDivLoss(torch.ones(NUM_CLASSES)).to(device)
    x = torch.randn(args.batch_size, 1, args.image_size, args.image_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    targets = torch.softmax(torch.randn(args.batch_size, NUM_CLASSES, device=device), 1)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(step_model(x), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return args.batch_size * calls_per_s(step, args.model_steps, 10 if args.compile else 5, device)


def main() -> None:
    args = parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.samples, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (args.samples,), generator=generator)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch_size}, {args.image_size}px; {args.repeats} rounds of "
          f"{args.batches} timed batches after {WARMUP_BATCHES} warm-up, pipelines taking turns; best (range)")

    names = {
        ("device", False): "on-device (gather, resize, normalize, MixUp/CutMix)",
        ("device", True): "on-device + RandomAffine fused into the resize",
        ("per-image", False): f"per-image (PIL Resize, ToTensor, Normalize; {args.workers} workers; timm Mixup)",
        ("per-image", True): "per-image + RandomAffine (PIL, after Resize)",
    }
    builders = {"device": device_pipeline, "per-image": per_image_pipeline}
    kinds = ("device", "per-image") if args.per_image else ("device",)
    steps = {(kind, affine): builders[kind](images, labels, args, device, affine)
             for affine in (False, True) for kind in kinds}
    rates: dict[tuple[str, bool], list[float]] = {key: [] for key in steps}
    for _ in range(args.repeats):
        for key, step in steps.items():
            rates[key].append(args.batch_size * calls_per_s(step, args.batches, WARMUP_BATCHES, device))
    for key, values in rates.items():
        print(f"{names[key]}: {max(values):,.0f} images/s ({min(values):,.0f}-{max(values):,.0f})")

    best = {key: max(values) for key, values in rates.items()}
    if device.type == "cuda":
        model_rate = time_model_step(args, device)
        print(f"EfficientNet-B3@{args.image_size} train step (bf16, channels_last"
              f"{', compiled' if args.compile else ''}): {model_rate:,.0f} images/s")
        print(f"pipeline/model ratio: {best['device', False] / model_rate:.1f}")
        print(f"pipeline+affine/model ratio: {best['device', True] / model_rate:.1f}")
    if args.per_image:
        for affine in (False, True):
            rounds = [d / p for d, p in zip(rates["device", affine], rates["per-image", affine])]
            label = "with RandomAffine" if affine else "without affine"
            print(f"{label}: device/per-image {best['device', affine] / best['per-image', affine]:.1f} "
                  f"(best over best; per round median {statistics.median(rounds):.1f}, "
                  f"{min(rounds):.1f}-{max(rounds):.1f})")
        print(f"device/per-image ratio, same transforms: {best['device', True] / best['per-image', True]:.1f}")


if __name__ == "__main__":
    main()
