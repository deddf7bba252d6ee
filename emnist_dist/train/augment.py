"""Random geometric augmentation of glyph batches, on the device where the data lives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError


class RandomAffine:
    """Mild random affine augmentation of a float batch, one transform per sample.

    Meant for the ``[0, 1]`` batch before normalisation, so the zero fill outside the
    source image is background. Parameters follow ``torchvision.transforms.RandomAffine``
    (and match ``torchvision.transforms.functional.affine`` exactly): rotation uniform in
    ``[-degrees, degrees]``, translation uniform in ``[-translate, translate]`` of the
    side, scale uniform in ``[1 - scale, 1 + scale]``, x-shear uniform in ``[-shear, shear]``
    degrees. The whole batch is warped by one ``affine_grid`` / ``grid_sample`` call.
    No flips: the scale stays positive, so the map never mirrors a glyph.

    The parameters come from its own seeded CPU ``torch.Generator``, so they do not depend
    on the device, and ``state_dict`` resumes the exact stream.
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
        """Whether any range is non-zero (otherwise calling it returns the batch unchanged)."""
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

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Warp ``x`` ``(N, C, H, W)`` with the given per-sample parameters (bilinear, zero fill)."""
        height, width = x.shape[-2:]
        angle, shear = torch.deg2rad(params["angle"]), torch.deg2rad(params["shear"])
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        # Forward map about the image centre, in pixels: A = scale * Rotation(angle) @ ShearX(shear).
        forward = torch.stack(
            [torch.stack([cos, -cos * tan - sin], -1), torch.stack([sin, -sin * tan + cos], -1)], -2
        ) * params["scale"][:, None, None]
        inverse = torch.linalg.inv(forward)
        # grid_sample wants output -> input in coordinates normalised to [-1, 1] per axis:
        # in_n = D A^-1 D^-1 (out_n - D t) with D = diag(2/W, 2/H) and t the shift in pixels.
        to_norm = torch.tensor([2.0 / width, 2.0 / height], dtype=torch.float64)
        shift = params["translate"] * torch.tensor([width, height], dtype=torch.float64)
        linear = to_norm[:, None] * inverse / to_norm[None, :]
        offset = -(to_norm[:, None] * inverse) @ shift[:, :, None]
        theta = torch.cat([linear, offset], dim=2).to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Warp each sample of ``x`` with its own random transform (``x`` itself when disabled)."""
        if not self.enabled:
            return x
        return self.apply(x, self.sample_params(len(x)))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
