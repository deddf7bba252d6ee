"""Model factory: 1-channel stem from a local weights file (sum of RGB kernels), body from the file, new head."""

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch

from emnist_dist.errors import UserError
from emnist_dist.train.network import create_model

ARCH = "test_efficientnet"  # timm's tiny EfficientNet: conv_stem ... classifier


@pytest.fixture(scope="module")
def rgb_source():
    """An ImageNet-shaped (3-channel, 1000-class) timm model with non-default BN statistics."""
    torch.manual_seed(0)
    model = timm.create_model(ARCH, pretrained=False)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_stem_sum_body_from_file_head_new(tmp_path, rgb_source, suffix):
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(rgb_source, str(path))
    else:
        torch.save(rgb_source, path)
    model = create_model(ARCH, 10, pretrained=str(path))
    state = model.state_dict()

    assert state["conv_stem.weight"].shape[1] == 1
    torch.testing.assert_close(state["conv_stem.weight"], rgb_source["conv_stem.weight"].sum(1, keepdim=True))
    head = {"classifier.weight", "classifier.bias"}
    body = [k for k in state if k not in head | {"conv_stem.weight"}]
    assert len(body) > 20
    for key in body:
        assert torch.equal(state[key], rgb_source[key]), key
    assert state["classifier.weight"].shape == (10, rgb_source["classifier.weight"].shape[1])
    assert not torch.equal(state["classifier.weight"], rgb_source["classifier.weight"][:10])
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_random_init_one_channel_and_regularisation():
    model = create_model(ARCH, 47, drop_rate=0.3, drop_path_rate=0.2)
    assert model.conv_stem.in_channels == 1 and model.classifier.out_features == 47
    assert model.drop_rate == 0.3
    drop_paths = [m for m in model.modules() if isinstance(m, timm.layers.DropPath)]
    assert drop_paths and max(m.drop_prob for m in drop_paths) > 0


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UserError, match=r"model.name='efficientnet-b3'.*efficientnet_b3") as err:
        create_model("efficientnet-b3", 10)
    assert "\n" not in str(err.value)


def test_missing_or_unfitting_weights_file(tmp_path, rgb_source):
    with pytest.raises(UserError, match="no such file"):
        create_model(ARCH, 10, pretrained=str(tmp_path / "absent.safetensors"))
    other = tmp_path / "resnet.safetensors"
    safetensors.torch.save_file(timm.create_model("resnet10t").state_dict(), str(other))
    with pytest.raises(UserError, match="could not load it into test_efficientnet") as err:
        create_model(ARCH, 10, pretrained=str(other))
    assert "\n" not in str(err.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="could not load it"):
        create_model(ARCH, 10, pretrained=str(garbage))


def test_hub_unreachable_points_to_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="--model.pretrained PATH") as err:
        create_model(ARCH, 10, pretrained=True)
    assert "\n" not in str(err.value)
