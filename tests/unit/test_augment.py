"""Device transforms: model input against torchvision; RandomAffine against torchvision's affine."""

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from emnist_dist.errors import UserError
from emnist_dist.train.augment import RandomAffine
from emnist_dist.data.resize import to_model_input


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
    height, width = x.shape[-2:]
    for i in range(len(x)):
        reference = TF.affine(
            x[i],
            angle=float(params["angle"][i]),
            translate=[float(params["translate"][i, 0]) * width, float(params["translate"][i, 1]) * height],
            scale=float(params["scale"][i]),
            shear=[float(params["shear"][i]), 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )
        torch.testing.assert_close(out[i], reference, rtol=0, atol=1e-5)


def test_parameters_stay_in_their_ranges():
    params = RandomAffine(degrees=10, translate=0.05, scale=0.1, shear=5, seed=0).sample_params(2000)
    assert params["angle"].abs().max() <= 10 and params["angle"].abs().max() > 9
    assert params["translate"].abs().max() <= 0.05
    assert 0.9 <= params["scale"].min() and params["scale"].max() <= 1.1
    assert params["shear"].abs().max() <= 5


def test_zero_ranges_are_the_identity():
    aug = RandomAffine(seed=0)
    x = torch.rand(4, 1, 28, 28)
    assert not aug.enabled and aug(x) is x
    identity = {
        "angle": torch.zeros(4, dtype=torch.float64),
        "translate": torch.zeros(4, 2, dtype=torch.float64),
        "scale": torch.ones(4, dtype=torch.float64),
        "shear": torch.zeros(4, dtype=torch.float64),
    }
    torch.testing.assert_close(aug.apply(x, identity), x, rtol=0, atol=1e-5)


def test_never_mirrors_a_glyph():
    """A mark left of centre stays left and one above stays above (a flip would move one across)."""
    x = torch.zeros(256, 2, 28, 28)  # one mark per channel; a sample's channels share its transform
    x[:, 0, 12:16, 2:6] = 1.0  # left of centre
    x[:, 1, 2:5, 12:16] = 1.0  # above centre
    out = RandomAffine(degrees=20, translate=0.0, scale=0.3, shear=20, seed=3)(x)
    offsets = torch.arange(28.0) - 13.5
    left_x = (out[:, 0].sum(1) * offsets).sum(1) / out[:, 0].sum((1, 2))
    top_y = (out[:, 1].sum(2) * offsets).sum(1) / out[:, 1].sum((1, 2))
    assert (left_x < -4).all() and (top_y < -4).all()


def test_deterministic_per_seed_and_state_round_trip():
    x = torch.rand(6, 1, 28, 28)
    a, b = RandomAffine(10, 0.1, 0.1, 5, seed=4), RandomAffine(10, 0.1, 0.1, 5, seed=4)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), RandomAffine(10, 0.1, 0.1, 5, seed=5)(x))
    state = a.state_dict()
    expected = [a(x), a(x)]
    resumed = RandomAffine(10, 0.1, 0.1, 5, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed(x), e) for e in expected)


@pytest.mark.parametrize("kwargs, name", [({"degrees": -1}, "augment.degrees"), ({"scale": 1.0}, "augment.scale"),
                                          ({"translate": 2}, "augment.translate"), ({"shear": 90}, "augment.shear")])
def test_bad_ranges_are_user_errors(kwargs, name):
    with pytest.raises(UserError, match=name):
        RandomAffine(**kwargs)
