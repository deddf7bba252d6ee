"""Device transforms against torchvision: the model input, the affine, and the affine fused into the resize."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from emnist_dist.data.resize import resize_to_float, to_model_input
from emnist_dist.data.synthetic import render_glyphs
from emnist_dist.errors import UserError
from emnist_dist.train.augment import RandomAffine, sampling_grid


def torchvision_affine(x: torch.Tensor, params: dict, i: int) -> torch.Tensor:
    """Sample ``i`` of ``x`` warped by torchvision with sample ``i``'s parameters (translation in pixels)."""
    height, width = x.shape[-2:]
    return TF.affine(
        x[i],
        angle=float(params["angle"][i]),
        translate=[float(params["translate"][i, 0]) * width, float(params["translate"][i, 1]) * height],
        scale=float(params["scale"][i]),
        shear=[float(params["shear"][i]), 0.0],
        interpolation=InterpolationMode.BILINEAR,
    )


def torchvision_affine_then_resize(x: torch.Tensor, params: dict, size: int) -> torch.Tensor:
    """The two-pass reference: warp at the stored resolution, then a bilinear resize."""
    resize = [size, size]
    return torch.stack([TF.resize(torchvision_affine(x, params, i), resize, interpolation=InterpolationMode.BILINEAR,
                                  antialias=False) for i in range(len(x))])


def identity_params(n: int) -> dict:
    zeros = torch.zeros(n, dtype=torch.float64)
    return {"angle": zeros, "translate": torch.zeros(n, 2, dtype=torch.float64), "scale": zeros + 1, "shear": zeros}


def test_to_model_input_matches_torchvision_resize_and_normalize():
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    out = to_model_input(images, 112, 0.17, 0.33)
    as_float = TF.convert_image_dtype(images, torch.float32)
    resized = TF.resize(as_float, [112, 112], interpolation=InterpolationMode.BILINEAR, antialias=False)
    reference = TF.normalize(resized, [0.17], [0.33])
    assert out.shape == (5, 1, 112, 112) and out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)


def test_random_affine_matches_torchvision_affine_per_sample():
    aug = RandomAffine(degrees=20, translate=0.1, scale=0.2, shear=15, seed=1)
    x = torch.rand(8, 1, 28, 24)  # not square: both axes' normalisation checked
    params = aug.sample_params(len(x))
    out = aug.apply(x, params)
    for i in range(len(x)):
        torch.testing.assert_close(out[i], torchvision_affine(x, params, i), rtol=0, atol=1e-5)


def test_sampling_grid_is_torch_affine_grid():
    theta = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(0))
    for dtype, atol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):  # in theta's own precision
        for height, width in ((112, 112), (7, 9)):
            reference = F.affine_grid(theta.to(dtype), [6, 1, height, width], align_corners=False)
            torch.testing.assert_close(sampling_grid(theta.to(dtype), height, width), reference, rtol=0, atol=atol)


def test_fused_resize_is_exactly_affine_then_resize_on_linear_images():
    """Bilinear sampling reproduces a linear image exactly, so where both paths sample inside the glyph
    (an all-ones image stays 1 on both) one sampling and torchvision's two must agree to rounding."""
    aug = RandomAffine(degrees=20, translate=0.1, scale=0.2, shear=15, seed=1)
    n, size = 16, 112
    params = aug.sample_params(n)
    gen = torch.Generator().manual_seed(2)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    slopes = torch.rand(n, 2, 1, 1, generator=gen) * 0.03 - 0.015
    ramps = (0.5 + slopes[:, 0] * xs + slopes[:, 1] * ys)[:, None]
    ones = torch.ones(n, 1, 28, 28)
    inside = (aug.apply(ones, params, size) > 1 - 1e-6) & (torchvision_affine_then_resize(ones, params, size) > 1 - 1e-6)
    inside[..., :2, :] = inside[..., -2:, :] = inside[..., :2] = inside[..., -2:] = False  # the resize clamps there
    assert inside.float().mean() > 0.6
    fused, two_pass = aug.apply(ramps, params, size), torchvision_affine_then_resize(ramps, params, size)
    torch.testing.assert_close(fused[inside], two_pass[inside], rtol=0, atol=1e-6)


def test_fused_resize_is_affine_then_resize_within_interpolation_error_on_glyphs():
    """On glyphs the two paths differ only by the second interpolation's blur: small on average."""
    images, _ = render_glyphs(list("0aBx"), 4, seed=0)
    images = torch.as_tensor(images)[:, None]
    aug = RandomAffine(degrees=10, translate=0.1, scale=0.1, shear=5, seed=1)
    params = aug.sample_params(len(images))
    x = images.float() / 255
    error = (aug.apply(x, params, 112) - torchvision_affine_then_resize(x, params, 112)).abs()
    assert error.mean() < 0.02 and torch.quantile(error.flatten(), 0.99) < 0.15


def test_resize_without_a_transform_is_the_plain_resize():
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 2:-2, 2:-2] = torch.randint(0, 256, (4, 1, 24, 24), dtype=torch.uint8)  # EMNIST's blank margin
    identity = RandomAffine(degrees=10, seed=0).apply(images.float() / 255, identity_params(4), 112)
    torch.testing.assert_close(identity, resize_to_float(images, 112), rtol=0, atol=1e-5)


def test_one_sampling_a_half_pixel_shift_is_the_resize_shifted():
    """translate 2.5/28 moves the glyph 2.5 source pixels = 10 output pixels at 112 px, right and down.

    Sampled once, the result is the plain resize moved by 10 pixels. Warping at 28 px first would
    average neighbouring pixels (half-pixel shift) and then resize that blur: not this."""
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 4:20, 4:20] = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    params = identity_params(3)
    params["translate"] = torch.full((3, 2), 2.5 / 28, dtype=torch.float64)
    shifted = RandomAffine(translate=0.1, seed=0).apply(images.float() / 255, params, 112)
    torch.testing.assert_close(shifted[..., 10:, 10:], resize_to_float(images, 112)[..., :-10, :-10], rtol=0, atol=1e-5)


def test_parameter_stream_is_angle_translate_scale_shear_from_the_seeded_generator():
    """The draws a checkpoint resumes: written out by hand from torch.rand on a generator with the seed."""
    aug = RandomAffine(degrees=10, translate=0.05, scale=0.1, shear=5, seed=7)
    params = aug.sample_params(3)
    gen = torch.Generator().manual_seed(7)

    def draw(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    expected = {"angle": (draw(3) * 2 - 1) * 10, "translate": (draw(3, 2) * 2 - 1) * 0.05,
                "scale": 1 + (draw(3) * 2 - 1) * 0.1, "shear": (draw(3) * 2 - 1) * 5}
    for name, values in expected.items():
        assert torch.equal(params[name], values), name


def test_resize_draws_one_transform_per_sample_and_resumes_bit_exactly():
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    aug, twin = RandomAffine(10, 0.1, 0.1, 5, seed=4), RandomAffine(10, 0.1, 0.1, 5, seed=4)
    assert torch.equal(aug.resize(images, 56), twin.apply(images.float() / 255, twin.sample_params(6), 56))
    assert not torch.equal(aug.resize(images, 56), RandomAffine(10, 0.1, 0.1, 5, seed=5).resize(images, 56))
    state = aug.state_dict()
    expected = [aug.resize(images, 56), aug.resize(images, 56)]
    resumed = RandomAffine(10, 0.1, 0.1, 5, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.resize(images, 56), e) for e in expected)


def test_parameters_stay_in_their_ranges():
    params = RandomAffine(degrees=10, translate=0.05, scale=0.1, shear=5, seed=0).sample_params(2000)
    assert params["angle"].abs().max() <= 10 and params["angle"].abs().max() > 9
    assert params["translate"].abs().max() <= 0.05
    assert 0.9 <= params["scale"].min() and params["scale"].max() <= 1.1
    assert params["shear"].abs().max() <= 5


def test_zero_ranges_resize_plainly_and_draw_nothing():
    aug = RandomAffine(seed=0)
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    state = aug.generator.get_state()
    assert not aug.enabled
    assert torch.equal(aug.resize(images, 112), resize_to_float(images, 112))
    assert torch.equal(aug.generator.get_state(), state)


def test_never_mirrors_a_glyph():
    """A mark left of centre stays left and one above stays above (a flip would move one across)."""
    images = torch.zeros(256, 2, 28, 28, dtype=torch.uint8)  # one mark per channel; a sample's channels share its transform
    images[:, 0, 12:16, 2:6] = 255  # left of centre
    images[:, 1, 2:5, 12:16] = 255  # above centre
    out = RandomAffine(degrees=20, translate=0.0, scale=0.3, shear=20, seed=3).resize(images, 56)
    offsets = torch.arange(56.0) - 27.5
    left_x = (out[:, 0].sum(1) * offsets).sum(1) / out[:, 0].sum((1, 2))
    top_y = (out[:, 1].sum(2) * offsets).sum(1) / out[:, 1].sum((1, 2))
    assert (left_x < -8).all() and (top_y < -8).all()


@pytest.mark.parametrize("kwargs, name", [({"degrees": -1}, "augment.degrees"), ({"degrees": 180}, "augment.degrees"),
                                          ({"scale": 1.0}, "augment.scale"), ({"translate": 1}, "augment.translate"),
                                          ({"shear": 90}, "augment.shear")])
def test_bad_ranges_are_user_errors(kwargs, name):
    """Each range is [0, limit): the limit itself (a half turn, the whole side, a zero scale, a flat shear) is refused."""
    with pytest.raises(UserError, match=name):
        RandomAffine(**kwargs)
    RandomAffine(**{key: value - 1e-6 if value > 0 else 0 for key, value in kwargs.items()})  # just below: accepted
