"""Random geometric augmentation fused into the resize, on the device where the data lives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.resize import resize_to_float
from ..errors import UserError


class RandomAffine:
    """Mild random affine augmentation, one transform per sample, applied while resizing.

    Parameters follow ``torchvision.transforms.RandomAffine`` (and match
    ``torchvision.transforms.functional.affine`` exactly): rotation uniform in
    ``[-degrees, degrees]``, translation uniform in ``[-translate, translate]`` of the side,
    scale uniform in ``[1 - scale, 1 + scale]``, x-shear uniform in ``[-shear, shear]`` degrees.
    No flips: the scale stays positive, so the map never mirrors a glyph.

    :meth:`resize` maps every output pixel at the model's image size through its sample's
    inverse transform straight into the stored 28-px glyph and samples it once (bilinear, zero
    fill outside the glyph): the random affine composed with the scale, one ``grid_sample`` for
    the batch. Augmenting costs one sampling at the output size, like the plain resize, and the
    glyph is interpolated once rather than warped and then resized.

    The parameters come from its own seeded CPU ``torch.Generator``, so they do not depend on
    the device, and ``state_dict`` resumes the exact stream.
    """

    def __init__(
        self, degrees: float = 0.0, translate: float = 0.0, scale: float = 0.0, shear: float = 0.0, *, seed: int = 0
    ) -> None:
        limits = {"degrees": (degrees, 180), "translate": (translate, 1), "scale": (scale, 1), "shear": (shear, 90)}
        for name, (value, limit) in limits.items():
            if not 0 <= value < limit:
                raise UserError(f"augment.{name}={value}: expected a value in [0, {limit})")
        self.degrees, self.translate, self.scale, self.shear = degrees, translate, scale, shear
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Start a fresh stream from ``seed`` (a resume on another number of processes)."""
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def enabled(self) -> bool:
        """Whether any range is non-zero (otherwise :meth:`resize` is the plain resize and draws nothing)."""
        return any(v > 0 for v in (self.degrees, self.translate, self.scale, self.shear))

    def sample_params(self, n: int) -> dict[str, torch.Tensor]:
        """Draw ``n`` transforms: angle and shear in degrees, translate ``(n, 2)`` as fractions of the side, scale."""

        def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1)
            return torch.rand(*shape, generator=self.generator, dtype=torch.float64) * 2 - 1

        return {
            "angle": uniform(n) * self.degrees,
            "translate": uniform(n, 2) * self.translate,
            "scale": 1 + uniform(n) * self.scale,
            "shear": uniform(n) * self.shear,
        }

    def resize(self, images: torch.Tensor, size: int) -> torch.Tensor:
        """uint8 ``(N, C, h, w)`` -> float32 ``(N, C, size, size)`` in [0, 1], each sample randomly warped.

        The training input: one bilinear sampling per output pixel (see the class). When no range
        is set it is :func:`~emnist_dist.data.resize.resize_to_float` and draws no parameters.
        """
        if not self.enabled:
            return resize_to_float(images, size)
        return self.apply(images.float().div_(255.0), self.sample_params(len(images)), size)

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor], size: int | None = None) -> torch.Tensor:
        """Sample float ``x`` ``(N, C, h, w)`` at ``size x size`` (default ``h x w``) through the given transforms."""
        height, width = x.shape[-2:]
        out_height, out_width = (height, width) if size is None else (size, size)
        # Built on the host in float64 from the host-side parameters, then copied without waiting:
        # a blocking host-to-device copy would synchronise the training step.
        theta = normalized_inverse(params, height, width).to(torch.float32)
        theta = theta.to(x.device, non_blocking=True).to(x.dtype)
        grid = sampling_grid(theta, out_height, out_width)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def normalized_inverse(params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """``(N, 2, 3)`` output -> input maps in ``grid_sample``'s normalised coordinates, for an ``h x w`` input.

    The coordinates run over [-1, 1] across each axis whatever the pixel count, so the same map
    serves an output of any size: sampling it at ``size x size`` is the warp followed by the resize.
    """
    angle, shear = torch.deg2rad(params["angle"]), torch.deg2rad(params["shear"])
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # Forward map about the image centre, in pixels: A = scale * R @ S with the rotation
    # R = [[cos, -sin], [sin, cos]] and the x-shear S = [[1, -tan], [0, 1]] (torchvision's sign).
    # Its inverse in closed form, A^-1 = S^-1 R^-1 / scale (a batched linalg.inv of 2x2 matrices
    # costs more than the whole map on a busy CPU).
    inverse = torch.stack(
        [torch.stack([cos - tan * sin, sin + tan * cos], -1), torch.stack([-sin, cos], -1)], -2
    ) / params["scale"][:, None, None]
    # in_n = D A^-1 D^-1 (out_n - D t) with D = diag(2/W, 2/H) and t the shift in pixels.
    to_norm = torch.tensor([2.0 / width, 2.0 / height], dtype=torch.float64)
    shift = params["translate"] * torch.tensor([width, height], dtype=torch.float64)
    linear = to_norm[:, None] * inverse / to_norm[None, :]
    offset = -(to_norm[:, None] * inverse) @ shift[:, :, None]
    return torch.cat([linear, offset], dim=2)


def sampling_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (N, C, height, width), align_corners=False)``, computed separably.

    Written here because ``F.affine_grid`` multiplies every pixel's ``(x, y, 1)`` by ``theta`` in a
    batched matrix product that on CPU took five times as long as the ``grid_sample`` it feeds
    (112 px, batch 256). The map is affine, so each coordinate is a per-row term plus a
    per-column term: two small vectors and one broadcast add, stored as ``(N, 2, H, W)`` planes
    and returned as the ``(N, H, W, 2)`` view ``grid_sample`` reads.
    """
    options = dict(dtype=theta.dtype, device=theta.device)
    xs = (torch.arange(width, **options) * 2 + 1) / width - 1  # pixel centres, align_corners=False
    ys = (torch.arange(height, **options) * 2 + 1) / height - 1
    per_row = torch.addcmul(theta[:, :, 2, None], theta[:, :, 1, None], ys)  # (N, 2, H)
    per_column = theta[:, :, 0, None] * xs  # (N, 2, W)
    return (per_row[:, :, :, None] + per_column[:, :, None, :]).permute(0, 2, 3, 1)
