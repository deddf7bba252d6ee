"""The Hub dataset folder that ``publish`` writes, and how a source recognises one.

Layout (the one ``Dataset.push_to_hub`` gives a repository of several configs, so
``datasets.load_dataset(DIR, SPLIT)`` and the Hub's viewer read it with ``datasets`` alone)::

    README.md                                       dataset card: YAML metadata (configs, dataset_info) + text
    {split}/{part}-{index:05d}-of-{count:05d}.parquet   one config per split, parts train and test

Unlike copies made straight from the NIST files, such a folder stores the glyphs upright and the
labels as class ids (letters 0..25). The card's tag :data:`TAG` says so; a folder whose card lacks
it is read like any other parquet copy.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from huggingface_hub import metadata_load

from ..errors import UserError, one_line
from .dataset_io import PARTS
from .splits import MNIST_FORMAT_SPLIT, SplitInfo, class_names_problem

CARD_FILE = "README.md"
TAG = "emnist_dist"
"""Card tag of a folder written by ``publish``: glyphs upright, labels are class ids."""


def shard_path(split: str, part: str, index: int, count: int) -> str:
    """Path of one Parquet shard inside the folder, named as ``push_to_hub`` names them."""
    return f"{split}/{part}-{index:05d}-of-{count:05d}.parquet"


def data_files(split: str) -> list[dict[str, str]]:
    """The ``data_files`` of ``split``'s config in the card: one glob per part."""
    return [{"split": part, "path": f"{split}/{part}-*"} for part in PARTS]


def published_configs(folder: Path) -> dict[str, dict] | None:
    """The card metadata of a folder written by ``publish`` as ``{config: dataset_info entry}``, else None.

    Raises:
        UserError: a card whose YAML metadata cannot be read (the folder's layout is then unknown).
    """
    card = folder / CARD_FILE
    if not card.is_file():
        return None
    try:
        meta = metadata_load(card) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        raise UserError(f"{card}: unreadable YAML metadata ({one_line(err)}): expected a dataset card") from None
    if not isinstance(meta, dict) or TAG not in (meta.get("tags") or []):
        return None
    infos = meta.get("dataset_info") or []
    infos = [infos] if isinstance(infos, dict) else infos  # one config is stored as a mapping
    configs = {c.get("config_name"): c for c in meta.get("configs") or [] if isinstance(c, dict)}
    by_name = {i.get("config_name", "default"): i for i in infos if isinstance(i, dict)}
    return {name: {**configs[name], **by_name.get(name, {})} for name in configs}


def published_parquet(folder: Path, info: SplitInfo) -> tuple[dict[str, list[Path]], list[str]] | None:
    """The Parquet files of ``info``'s config and its class names, when ``folder`` was written by ``publish``
    (else None).

    Checks what the card promises before anything is decoded: the class names (the split's own; the ``mnist``
    split, which MNIST-format sources name in their classes.txt, any 10 fit to name classes), and the row
    count of each part (a missing or extra shard would otherwise go unnoticed).

    Raises:
        UserError: the card lacks the split, names other classes, or disagrees with the files.
    """
    configs = published_configs(folder)
    if configs is None:
        return None
    card = folder / CARD_FILE
    if info.name not in configs:
        raise UserError(f"{card}: a published EMNIST dataset with configs {', '.join(map(str, configs)) or 'none'}: "
                        f"expected a {info.name} config")
    config = configs[info.name]
    names = _label_names(config)
    own_names = info.name == MNIST_FORMAT_SPLIT and names is not None and len(names) == info.num_classes
    if names != info.class_names and not (own_names and class_names_problem(names) is None):
        expected = (f"{info.num_classes} distinct, visible class names" if info.name == MNIST_FORMAT_SPLIT
                    else info.class_names)
        raise UserError(f"{card}: the {info.name} labels are {names}: expected {expected}")
    promised = {s.get("name"): s.get("num_examples") for s in config.get("splits") or [] if isinstance(s, dict)}
    files = {}
    for entry in config.get("data_files") or []:
        pattern = str(entry.get("path", "")) if isinstance(entry, dict) else ""
        if entry.get("split") not in PARTS or not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise UserError(f"{card}: data_files entry {entry!r}: expected split train/test and a path inside the folder")
        files[entry["split"]] = sorted(folder.glob(pattern))
    for part in PARTS:
        found = files.get(part, [])
        try:
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in found)
        except (pa.ArrowException, OSError) as err:
            raise UserError(f"{folder}: unreadable {info.name} {part} parquet ({one_line(err)}): "
                            "expected the files publish wrote") from None
        if not found or rows != promised.get(part):
            raise UserError(f"{folder}: the {info.name} {part} files hold {rows} rows in {len(found)} files: "
                            f"expected {promised.get(part)} as {CARD_FILE} says")
    return files, names


def _label_names(config: dict) -> list[str] | None:
    """Class names of the ``label`` ClassLabel in a ``dataset_info`` entry, in id order."""
    for feature in config.get("features") or []:
        if isinstance(feature, dict) and feature.get("name") == "label":
            dtype = feature.get("dtype")
            names = dtype.get("class_label", {}).get("names") if isinstance(dtype, dict) else None
            return [str(names[key]) for key in sorted(names, key=int)] if isinstance(names, dict) else None
    return None
