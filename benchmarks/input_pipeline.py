"""Input-pipeline throughput: the on-device batch pipeline vs the classic per-image DataLoader.

On-device (this package): the split sits on the device as uint8; a batch is an index
gather, then resize -> normalize -> MixUp/CutMix as whole-batch tensor ops.
Per-image (the reference's): a torchvision-style dataset turning each uint8 glyph into a
PIL image, then Resize -> RandomAffine -> ToTensor -> Normalize, batched by a DataLoader
with worker processes, then timm's Mixup on the batch.

Both run on the same synthetic uint8 glyphs (throughput does not depend on the content)
with the same batch size, side by side. With CUDA it also times an EfficientNet-B3 training
step (bf16, channels_last) at the same image size, to show what share of a step the
input pipeline costs. The last line is ``device/per-image ratio: X``.

    python -m benchmarks.input_pipeline                 # about a minute on a 2-core CPU
    python -m benchmarks.input_pipeline --batches 200 --repeats 5 --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from timm.data import Mixup
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from emnist_dist.train.batches import TrainLoader
from emnist_dist.train.mixup import MixUpCutMix
from emnist_dist.train.augment import RandomAffine
from emnist_dist.data.resize import normalize, resize_to_float

MEAN, STD = 0.17, 0.33  # EMNIST-like statistics; the values do not affect throughput
NUM_CLASSES = 62
# the reference's mild geometric augmentation (torchvision RandomAffine arguments)
AFFINE = dict(degrees=10, translate=0.1, scale=0.1, shear=5)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=60_000, help="synthetic training images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batches", type=int, default=60, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per pipeline; the best is reported")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-image pipeline")
    parser.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda")
    parser.add_argument("--model-steps", type=int, default=20, help="timed EfficientNet-B3 steps (CUDA only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model for the CUDA step timing")
    return parser.parse_args()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches_forever(loader: TrainLoader):
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def time_device_pipeline(images, labels, args, device, affine: RandomAffine | None) -> float:
    """Images/s of: index gather -> [RandomAffine at 28 px] -> resize -> normalize -> MixUp/CutMix, on ``device``."""
    loader = TrainLoader(images, labels, args.batch_size, seed=0, device=device)
    mixer = MixUpCutMix(NUM_CLASSES, seed=0)
    batches = batches_forever(loader)

    def step():
        x, y = next(batches)
        x = resize_to_float(x, args.image_size, augment=affine)
        return mixer(normalize(x, MEAN, STD), y)

    return measure(step, args, device)


class PerImageDataset(Dataset):
    """The classic torchvision-style dataset: one PIL image per sample, transformed on access."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int) -> None:
        self.images, self.labels = images, labels
        self.transform = T.Compose(
            [
                T.Resize(image_size),
                T.RandomAffine(AFFINE["degrees"], translate=(AFFINE["translate"],) * 2,
                               scale=(1 - AFFINE["scale"], 1 + AFFINE["scale"]), shear=AFFINE["shear"]),
                T.ToTensor(),
                T.Normalize((MEAN,), (STD,)),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def time_per_image_pipeline(images, labels, args, device) -> float:
    """Images/s of the per-image DataLoader (+ timm Mixup on the batch, on ``device``)."""
    dataset = PerImageDataset(images[:, 0].numpy(), labels.numpy(), args.image_size)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    mixer = Mixup(mixup_alpha=0.22, cutmix_alpha=0.62, prob=0.8, switch_prob=0.5, label_smoothing=0.1,
                  num_classes=NUM_CLASSES)

    def forever():
        while True:
            yield from loader

    batches = forever()

    def step():
        x, y = next(batches)
        return mixer(x.to(device, non_blocking=True), y.to(device, non_blocking=True))

    return measure(step, args, device)


def measure(step, args, device) -> float:
    """Best images/s of ``args.repeats`` runs of ``args.batches`` steps, after warm-up steps.

    The best rather than the mean, as ``timeit`` does: on a shared machine the slower runs
    measure the neighbours. Both pipelines are measured the same way.
    """
    rates = []
    for _ in range(args.repeats):
        for _ in range(3):
            step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.batches):
            step()
        synchronize(device)
        rates.append(args.batches * args.batch_size / (time.perf_counter() - start))
    return max(rates)


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

    for _ in range(5 if not args.compile else 10):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.model_steps):
        step()
    synchronize(device)
    return args.model_steps * args.batch_size / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.samples, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (args.samples,), generator=generator)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch_size}, {args.image_size}px, {args.batches} batches x {args.repeats}")

    on_device = time_device_pipeline(images, labels, args, device, affine=None)
    print(f"on-device pipeline (gather, resize, normalize, MixUp/CutMix): {on_device:,.0f} images/s")
    with_affine = time_device_pipeline(images, labels, args, device, affine=RandomAffine(**AFFINE, seed=0))
    print(f"on-device pipeline + RandomAffine: {with_affine:,.0f} images/s")
    per_image = time_per_image_pipeline(images, labels, args, device)
    print(f"per-image pipeline (PIL Resize, RandomAffine, ToTensor, Normalize; {args.workers} workers; "
          f"timm Mixup): {per_image:,.0f} images/s")
    print(f"device+affine/per-image ratio: {with_affine / per_image:.1f}")

    if device.type == "cuda":
        model_rate = time_model_step(args, device)
        print(f"EfficientNet-B3@{args.image_size} train step (bf16, channels_last"
              f"{', compiled' if args.compile else ''}): {model_rate:,.0f} images/s")
        print(f"pipeline/model ratio: {on_device / model_rate:.1f}")
        print(f"pipeline+affine/model ratio: {with_affine / model_rate:.1f}")
    print(f"device/per-image ratio: {on_device / per_image:.1f}")


if __name__ == "__main__":
    main()
