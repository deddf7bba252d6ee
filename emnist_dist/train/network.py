"""Model factory: any timm network with a 1-channel stem and the split's class count."""

from __future__ import annotations

import difflib
import pickle
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError

from ..errors import UserError, one_line

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def create_model(
    name: str,
    num_classes: int,
    *,
    pretrained: bool | str = False,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> torch.nn.Module:
    """Build timm ``name`` with ``in_chans=1`` and a ``num_classes`` head.

    Args:
        name: any timm model name (``timm.list_models()``), optionally ``name.tag`` or ``hf-hub:...``.
        num_classes: classes of the split.
        pretrained: ``False`` (random init) | ``True`` (timm's default weights from the
            Hugging Face Hub) | path to a local weights file (``.safetensors``/``.pth``/``.bin``,
            for offline clusters), loaded through timm's ``pretrained_cfg_overlay=dict(file=...)``.
            Either way timm adapts the pretrained RGB stem to one channel by summing its
            kernels over the input channels, loads the body as is, and leaves the head
            freshly initialised (its class count differs).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth (passed only when > 0: not every model takes it).

    Raises:
        UserError: unknown model name, missing or unusable weights file, hub unreachable.
    """
    if not (timm.is_model(name) or name.startswith(("hf-hub:", "hf_hub:"))):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        raise UserError(f"model.name={name!r}: not a timm model{hint}")
    kwargs = dict(in_chans=1, num_classes=num_classes, drop_rate=drop_rate)
    if drop_path_rate > 0:
        kwargs["drop_path_rate"] = drop_path_rate

    if pretrained is False:
        return _build(name, kwargs)
    if pretrained is True:
        try:
            return _build(name, kwargs, pretrained=True)
        except (OSError, RuntimeError) as err:  # huggingface_hub errors are OSErrors; timm raises RuntimeError
            raise UserError(
                f"model.pretrained=true: could not get pretrained weights for {name} from the Hugging Face Hub "
                f"({one_line(err)}); offline, pass a local weights file instead: --model.pretrained PATH"
            ) from None

    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise UserError(f"model.pretrained={pretrained!r}: no such file; expected true, false or a weights file")
    if not path.name.endswith(WEIGHT_SUFFIXES):
        raise UserError(f"model.pretrained={pretrained!r}: expected a weights file ending in {', '.join(WEIGHT_SUFFIXES)}")
    try:
        return _build(name, kwargs, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    except (RuntimeError, OSError, ValueError, KeyError, SafetensorError, pickle.UnpicklingError) as err:
        raise UserError(
            f"model.pretrained={pretrained!r}: could not load it into {name} ({one_line(err)}); "
            f"expected weights saved from timm's {name}"
        ) from None


def _build(name: str, kwargs: dict, **extra) -> torch.nn.Module:
    try:
        return timm.create_model(name, **kwargs, **extra)
    except TypeError as err:  # an option this architecture does not take, e.g. drop_path_rate
        raise UserError(f"model.name={name!r}: {one_line(err)}") from None
