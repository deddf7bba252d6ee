"""The dataset card of a folder written by ``publish``: what the data is, where it came from (with checksums a
copy can be checked against), its classes and sizes, licence and citation; and the card's source lines read back
(a second publish into the same folder is compared with them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from .download import file_md5
from .hub_folder import TAG, data_files
from .readers import is_mnist_format, is_synthetic
from .readers.nist_download import NIST_MD5, nist_md5
from .splits import SPLITS, SplitInfo

LICENSE_LINK = "https://www.nist.gov/srd/nist-special-database-19"
_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"))
_CITATION = """@inproceedings{cohen2017emnist,
  title     = {EMNIST: an extension of MNIST to handwritten letters},
  author    = {Cohen, Gregory and Afshar, Saeed and Tapson, Jonathan and van Schaik, Andr{\\'e}},
  booktitle = {2017 International Joint Conference on Neural Networks (IJCNN)},
  pages     = {2921--2926},
  year      = {2017},
  doi       = {10.1109/IJCNN.2017.7966217},
  note      = {arXiv:1702.05373}
}"""



def dataset_card(
    infos: list[SplitInfo],
    source: str,
    dataset_infos: DatasetInfosDict,
    counts: dict[str, dict[str, np.ndarray]],
    repo_id: str | None,
    origin: list[str],
) -> DatasetCard:
    """The dataset card: YAML metadata the Hub and ``load_dataset`` read, and the text for people
    (``origin``: the lines on the source, :func:`source_lines`). It describes the data the folder holds:
    EMNIST, the synthetic stand-in, or a dataset of its own in MNIST-format files (its class names, its
    folder's name, no EMNIST text)."""
    synthetic, foreign = is_synthetic(source), is_mnist_format(source)
    class_names = {i.name: dataset_infos[i.name].features["label"].names for i in infos}
    totals = {i.name: sum(int(c.sum()) for c in counts[i.name].values()) for i in infos}
    emnist_meta = not (synthetic or foreign)
    data = DatasetCardData(
        pretty_name=(f"{Path(source).name} (MNIST format, not EMNIST)" if foreign else
                     "SYNTHETIC stand-in for EMNIST (not EMNIST)" if synthetic else "EMNIST"),
        license="unknown" if foreign else "mit" if synthetic else "other",
        task_categories=["image-classification"],
        task_ids=["multi-class-image-classification"],
        size_categories=sorted({_size_category(n) for n in totals.values()}, key=_size_rank),
        annotations_creators=["other" if foreign else "machine-generated" if synthetic else "expert-generated"],
        source_datasets=None if foreign else ["original"] if synthetic else ["extended"],
        tags=(["mnist-format", TAG] if foreign else
              ["emnist", "handwriting", "characters", TAG] + (["synthetic"] if synthetic else [])),
        configs=[{"config_name": i.name, "data_files": data_files(i.name)} for i in infos],
        **({"license_name": "nist-sd19", "license_link": LICENSE_LINK} if emnist_meta else {}),
    )
    dataset_infos.to_dataset_card_data(data)  # dataset_info: features, split sizes (as push_to_hub writes it)
    names = [i.name for i in infos]
    repo = repo_id or "OWNER/NAME"
    variable, item = ("dataset", "name") if foreign else ("emnist", "character")
    lines = [f"# {data.pretty_name}: {', '.join(names)}", ""]
    if synthetic:
        lines += ["> **SYNTHETIC data, not EMNIST.** Glyphs rendered from fonts by emnist_dist's offline stand-in, "
                  "stored like EMNIST, to exercise pipelines. Nothing here is handwriting.", ""]
    lines += [
        *([f"A 10-class image dataset in the MNIST file format (`train-images-idx3-ubyte`, "
           "`train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`; MNIST, Fashion-MNIST and "
           f"KMNIST ship in it) from the local folder `{Path(source).name}`, as Parquet for `datasets` alone and the "
           "Hub's viewer. emnist_dist does not know where these files come from: add their origin, licence and "
           "citation to this card before you share it."] if foreign else
          ["EMNIST (Cohen et al., 2017) is NIST Special Database 19's handwritten digits and letters converted to "
           "28x28 greyscale images as MNIST was made. This copy holds official splits as Parquet, one config "
           "per split, each with the official `train` and `test` parts, for `datasets` alone (no loading script) "
           "and the Hub's viewer."]), "",
        "| config | classes | train | test |", "| --- | --- | --- | --- |",
        *(f"| {i.name} | {len(class_names[i.name])} | {int(counts[i.name]['train'].sum()):,} | "
          f"{int(counts[i.name]['test'].sum()):,} |" for i in infos), "",
        "## Load it", "",
        "```python",
        "from datasets import load_dataset",
        f'{variable} = load_dataset("{repo}", "{names[0]}")      # or a local copy of this folder',
        f'{variable}["train"][0]["image"]                          # a PIL image, upright',
        f'{variable}["train"].features["label"].names              # class id -> {item}',
        "```", "",
        "With emnist_dist, this copy becomes its training cache, identical pixel for pixel to the one built from "
        f"the source below: `python -m emnist_dist.data prepare --split {names[0]} --source hf:{repo}`.", "",
        "## Columns", "",
        *(["- `image`: a `datasets` Image (PNG, 8-bit greyscale, 28x28), upright as the MNIST-format files store it.",
           "- `label`: a ClassLabel whose names are the source folder's `classes.txt` (one name a line, in label "
           "order), or the digits 0-9 where it has none."] if foreign else
          ["- `image`: a `datasets` Image (PNG, 8-bit greyscale, 28x28, bright ink on black), **upright**. The NIST "
           "files store every glyph transposed (rows and columns swapped); this copy swaps them back once, so the "
           "images display as written. Do not transpose them again.",
           "- `label`: a ClassLabel whose names are the characters, in the class-id order of the NIST mapping files. "
           "`letters` is shifted from the NIST labels 1..26 to 0..25 (`a`..`z`, upper and lower case merged)."]), "",
        "## Source", "",
        *origin, "",
        f"Built with `python -m emnist_dist.data publish --split {'all' if names == list(SPLITS) else ','.join(names)} "
        f"--source {_shown_source(source)} --out DIR`.", "",
        "## Classes and counts", "",
    ]
    for info in infos:
        lines += [f"### {info.name}", "", f"| id | {item} | train | test |", "| --- | --- | --- | --- |"]
        train, test = counts[info.name]["train"], counts[info.name]["test"]
        lines += [f"| {k} | `{_table_cell(c)}` | {int(train[k]):,} | {int(test[k]):,} |"
                  for k, c in enumerate(class_names[info.name])]
        lines.append("")
    if foreign:
        lines += ["## License", "", "Unknown to emnist_dist: the terms of the files this folder was built from apply.",
                  ""]
        return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))
    lines += [
        "## Known issues", "",
        "- Case twins: many lower- and upper-case letters are written alike (c/C, k/K, m/M, o/O, p/P, s/S, u/U, "
        "v/V, w/W, x/X, y/Y, z/Z) and some letters look like digits (o/O/0, l/I/1, z/Z/2, s/S/5, g/q/9). ByClass "
        "keeps them apart, so a large share of its errors are case confusions: report case-insensitive accuracy "
        "too. ByMerge and Balanced merge the 15 most ambiguous pairs.",
        "- Label noise: the data hold mislabeled glyphs, and glyphs stored turned or mirrored.",
        "  `python -m emnist_dist.audit` ranks them (cross-validated out-of-fold predictions, cleanlab) and "
        "writes `label_issues.csv` (row = the glyph's row in `train`), a contact sheet and an exclusion list "
        "that training accepts.",
        "- ByClass and ByMerge are imbalanced (about 20x between the largest and smallest class); Balanced, "
        "Letters, Digits and MNIST are balanced.", "",
        "## License", "",
        *(["MIT, like emnist_dist that rendered the glyphs (from fonts shipped with matplotlib)."] if synthetic else
          [f"EMNIST is distributed by NIST under NIST's terms for Special Database 19 ({LICENSE_LINK}); this "
           "copy changes the file format and the orientation only. Check those terms before you redistribute it."]),
        "",
        "## Citation", "", "```bibtex", _CITATION, "```", "",
    ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _table_cell(text: str) -> str:
    """``text`` inside a Markdown table cell: a ``|`` would end the cell, so it is escaped."""
    return text.replace("|", "\\|")


def source_lines(source: str, out: Path, prepare_args: dict) -> list[str]:
    """The card's lines on where the data came from, with checksums to check a copy against (and what a second
    publish into the same folder is compared with). Files under ``out`` are not the source's."""
    if is_synthetic(source):
        sizes = {key: prepare_args[key] for key in ("synthetic_train_per_class", "synthetic_test_per_class", "seed")
                 if key in prepare_args}
        drawn = ", ".join(f"{key.removeprefix('synthetic_').replace('_', ' ')} {value}" for key, value in sizes.items())
        return [f"emnist_dist's synthetic stand-in (no archive){f': {drawn}' if drawn else ''}."]
    if source == "nist":
        return [f"The NIST archive `gzip.zip` (https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip), md5 "
                f"`{nist_md5()}`, verified after the download."]
    if source.startswith("hf:"):
        return [f"The Hugging Face Hub dataset `{source[3:]}`."]
    path = Path(source).expanduser()
    if not path.exists():
        return []  # prepare names the missing source
    skip = out.resolve()
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.is_file() and not f.resolve().is_relative_to(skip))
    lines = []
    for f in files:
        md5 = file_md5(f)
        official = " (the official NIST archive)" if md5 == NIST_MD5 else ""
        lines.append(f"- `{f.name if f == path else f.relative_to(path)}`: md5 `{md5}`{official}")
    return ["Local files (md5 of each):", "", *lines]


def _shown_source(source: str) -> str:
    """The source as the card shows it: a local path by its name only (no user folders on the Hub)."""
    return source if source in ("nist", "synthetic") or source.startswith("hf:") else Path(source).name


def _size_category(n: int) -> str:
    return next((name for limit, name in _SIZE_CATEGORIES if n < limit), "n>10M")


def _size_rank(category: str) -> int:
    return [name for _, name in _SIZE_CATEGORIES].index(category)


def card_source_lines(card: str) -> list[str]:
    """The lines a card written by :func:`dataset_card` gives on its source (its "Source" section)."""
    section = card.split("\n## Source\n\n", 1)[-1].split("\n\nBuilt with ", 1)[0]
    return section.split("\n")
