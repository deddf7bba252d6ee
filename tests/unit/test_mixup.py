"""MixUp/CutMix against timm.data.Mixup (batch mode) on the same input, lambda and box."""

import numpy as np
import pytest
import torch
from timm.data import Mixup
from timm.data.mixup import cutmix_bbox_and_lam, mixup_target

from emnist_dist.train.mixup import MixParams, MixUpCutMix, cutmix_box, smooth_one_hot

C = 7


def batch(n=8, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, generator=g), torch.randint(0, C, (n,), generator=g)


def timm_mix(x, labels, lam, use_cutmix, np_seed, smoothing=0.1):
    """timm's batch-mode Mixup with its lambda forced and its box drawn after np.random.seed(np_seed)."""
    mixer = Mixup(mixup_alpha=0.22, cutmix_alpha=0.62, prob=1.0, mode="batch", label_smoothing=smoothing,
                  num_classes=C)
    mixer._params_per_batch = lambda: (lam, use_cutmix)
    np.random.seed(np_seed)
    return mixer(x.clone(), labels)


def timm_center(height, width, np_seed):
    """The box centre timm's rand_bbox draws after np.random.seed(np_seed) (margin 0)."""
    np.random.seed(np_seed)
    return int(np.random.randint(0, height)), int(np.random.randint(0, width))


def test_smooth_one_hot_matches_timm():
    _, labels = batch()
    torch.testing.assert_close(smooth_one_hot(labels, C, 0.1), mixup_target(labels, C, 1.0, 0.1), rtol=0, atol=0)
    assert torch.equal(smooth_one_hot(labels, C, 0.0), torch.nn.functional.one_hot(labels, C).float())


@pytest.mark.parametrize("lam", [0.05, 0.3, 0.5, 0.77, 0.97])
@pytest.mark.parametrize("np_seed", range(6))
def test_cutmix_box_and_corrected_lambda_match_timm(lam, np_seed):
    shape = (3, 1, 11, 14)
    np.random.seed(np_seed)
    timm_box, timm_lam = cutmix_bbox_and_lam(shape, lam, correct_lam=True)
    box, corrected = cutmix_box(11, 14, lam, *timm_center(11, 14, np_seed))
    assert box == tuple(int(v) for v in timm_box)
    assert corrected == pytest.approx(timm_lam, abs=1e-12)


@pytest.mark.parametrize("np_seed", range(4))
def test_cutmix_batch_matches_timm(np_seed):
    x, labels = batch(seed=np_seed)
    raw_lam = 0.4
    box, lam = cutmix_box(12, 12, raw_lam, *timm_center(12, 12, np_seed))
    mixer = MixUpCutMix(C, label_smoothing=0.1)
    ours_x, ours_t = mixer.apply(x, labels, MixParams(lam, box))
    timm_x, timm_t = timm_mix(x, labels, raw_lam, True, np_seed)
    assert torch.equal(ours_x, timm_x)
    torch.testing.assert_close(ours_t, timm_t, rtol=0, atol=1e-6)


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.83])
def test_mixup_batch_matches_timm(lam):
    x, labels = batch(seed=3)
    ours_x, ours_t = MixUpCutMix(C).apply(x, labels, MixParams(lam))
    timm_x, timm_t = timm_mix(x, labels, lam, False, 0)
    torch.testing.assert_close(ours_x, timm_x, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_t, timm_t, rtol=0, atol=1e-6)


def test_unmixed_batch_matches_timm_and_input_is_untouched():
    x, labels = batch()
    original = x.clone()
    ours_x, ours_t = MixUpCutMix(C).apply(x, labels, MixParams())
    timm_x, timm_t = timm_mix(x, labels, 1.0, False, 0)
    assert torch.equal(ours_x, timm_x) and torch.equal(ours_t, timm_t)
    MixUpCutMix(C).apply(x, labels, MixParams(0.5))
    MixUpCutMix(C).apply(x, labels, MixParams(0.5, (0, 6, 0, 6)))
    assert torch.equal(x, original)


def test_sampling_follows_the_configured_probabilities():
    mixer = MixUpCutMix(C, mixup_alpha=0.22, cutmix_alpha=0.62, prob=0.8, switch_prob=0.5, seed=0)
    draws = [mixer.sample(112, 112) for _ in range(4000)]
    mixed = [p for p in draws if p.lam != 1.0]
    cut = [p for p in mixed if p.box is not None]
    assert abs(len(mixed) / len(draws) - 0.8) < 0.03
    assert abs(len(cut) / len(mixed) - 0.5) < 0.04
    lams = np.array([p.lam for p in mixed if p.box is None])
    a = 0.22  # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert abs(lams.mean() - 0.5) < 0.03 and abs(lams.var() - 1 / (4 * (2 * a + 1))) < 0.015
    for p in cut:  # the box is inside the image and lambda is its complement's area
        y0, y1, x0, x1 = p.box
        assert 0 <= y0 <= y1 <= 112 and 0 <= x0 <= x1 <= 112
        assert p.lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 112**2)


def test_single_method_and_disabled_settings():
    only_cut = MixUpCutMix(C, mixup_alpha=0.0, prob=1.0, seed=1)
    assert all(only_cut.sample(28, 28).box is not None for _ in range(50))
    only_mix = MixUpCutMix(C, cutmix_alpha=0.0, prob=1.0, seed=1)
    assert all(only_mix.sample(28, 28).box is None for _ in range(50))
    off = MixUpCutMix(C, prob=0.0)
    x, labels = batch()
    out_x, out_t = off(x, labels)
    assert not off.enabled and torch.equal(out_x, x) and torch.equal(out_t, smooth_one_hot(labels, C, 0.1))


def test_seeded_and_resumable():
    x, labels = batch()
    a, b = MixUpCutMix(C, seed=5), MixUpCutMix(C, seed=5)
    assert [a.sample(28, 28) for _ in range(20)] == [b.sample(28, 28) for _ in range(20)]
    state = a.state_dict()
    expected = [a(x, labels) for _ in range(5)]
    resumed = MixUpCutMix(C, seed=0)
    resumed.load_state_dict(state)
    for ex, et in expected:
        rx, rt = resumed(x, labels)
        assert torch.equal(rx, ex) and torch.equal(rt, et)


def test_odd_batch_is_rejected():
    x, labels = batch(n=7)
    with pytest.raises(ValueError, match="even"):
        MixUpCutMix(C)(x, labels)


def test_mixing_stops_at_augment_mixup_off_epoch():
    from emnist_dist.config import parse_config
    from emnist_dist.train.components import Augmentation

    cfg = parse_config(["--augment.mix_prob", "1", "--augment.mixup_off_epoch", "2", "--augment.label_smoothing", "0.1",
                        "--augment.degrees", "0", "--augment.translate", "0", "--augment.scale", "0",
                        "--augment.shear", "0", "--data.image_size", "12"])
    augmentation = Augmentation(cfg, num_classes=4, mean=0.0, std=1.0, seed=0)
    images = (torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    # By hand, label smoothing 0.1 over 4 classes: 0.1 / 4 = 0.025 off the label, 1 - 0.1 + 0.025 on it.
    plain = torch.full((8, 4), 0.025)
    plain[torch.arange(8), labels] = 0.925
    for epoch in range(4):
        x, targets = augmentation(images, labels, epoch)
        if epoch < 2:  # mixed: every row blends two labels, so no row is the plain smoothed one-hot
            assert not torch.isclose(targets, plain).all(dim=1).any(), epoch
        else:  # from epoch 2 on: the glyphs as they are, with label-smoothed one-hot targets
            torch.testing.assert_close(targets, plain)
            torch.testing.assert_close(x, images.float() / 255)
