"""Parquet / saved-datasets sources (as Hub repos hold them) and ``hf:`` failing offline."""

import io
import socket
import struct
import zlib

import numpy as np
import pytest
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from datasets import List as ListFeature
from tests.helpers.emnist_raw import random_split

from huggingface_hub import constants as hf_constants
from PIL import Image as PILImage

from emnist_dist.data import class_names, load_split, prepare
from emnist_dist.data.__main__ import main
from emnist_dist.cli import run_cli
from emnist_dist.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_matches(cache, raw, first_label=0):
    for part in ("train", "test"):
        images, labels = load_split(cache, part)
        assert np.array_equal(images[:, 0].numpy(), getattr(raw, f"{part}_images").transpose(0, 2, 1))
        assert np.array_equal(labels.numpy(), getattr(raw, f"{part}_labels").astype(np.int64) - first_label)


def hub_image_dataset(images, labels, split):
    """What ``push_to_hub`` stores for an EMNIST copy: an Image feature (PNG bytes) and a ClassLabel."""
    features = Features({"image": Image(), "label": ClassLabel(names=class_names(split))})
    return Dataset.from_dict(
        {"image": [PILImage.fromarray(x) for x in images], "label": labels.tolist()}, features=features
    )


def test_hub_parquet_with_png_images(tmp_path):
    raw = random_split("balanced", 70, 25, seed=21)
    repo = tmp_path / "repo"
    for part in ("train", "test"):
        dataset = hub_image_dataset(getattr(raw, f"{part}_images"), getattr(raw, f"{part}_labels"), "balanced")
        dataset.to_parquet(str(repo / "data" / f"{part}-00000-of-00001.parquet"))
    stored = pq.read_table(repo / "data" / "train-00000-of-00001.parquet")
    assert stored.schema.field("image").type.get_field_index("bytes") >= 0
    assert stored.column("image")[0]["bytes"].as_py().startswith(PNG_SIGNATURE)  # really PNG-encoded

    assert_matches(prepare("balanced", str(repo), tmp_path / "cache", progress=False), raw)


def test_parquet_array_columns_single_file_and_config_folders(tmp_path):
    raw = random_split("letters", 40, 15, seed=22)
    other = random_split("digits", 30, 10, seed=23)
    for split_raw in (raw, other):  # one repo, one folder per split (a multi-config Hub repo)
        for part in ("train", "test"):
            images = getattr(split_raw, f"{part}_images")
            nested = pa.array(images.tolist(), type=pa.list_(pa.list_(pa.uint8())))
            table = pa.table({"label": pa.array(getattr(split_raw, f"{part}_labels"), pa.int64()), "image": nested})
            path = tmp_path / "repo" / split_raw.name / f"{part}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
    assert_matches(prepare("letters", str(tmp_path / "repo"), tmp_path / "c1", progress=False), raw, first_label=1)
    # a single train file names its test sibling
    single = prepare("digits", str(tmp_path / "repo" / "digits" / "train.parquet"), tmp_path / "c2", progress=False)
    assert_matches(single, other)


def test_saved_datasets_folder(tmp_path):
    raw = random_split("mnist", 50, 20, seed=24)
    image = ListFeature(ListFeature(Value("int64")))  # what Dataset.from_dict infers from nested lists
    features = Features({"image": image, "label": Value("int64")})
    parts = {
        part: Dataset.from_dict(
            {"image": getattr(raw, f"{part}_images").tolist(), "label": getattr(raw, f"{part}_labels").tolist()},
            features=features,
        )
        for part in ("train", "test")
    }
    DatasetDict(parts).save_to_disk(str(tmp_path / "saved"))
    assert_matches(prepare("mnist", str(tmp_path / "saved"), tmp_path / "cache", progress=False), raw)


def test_an_emnist_dist_cache_is_taken_as_is(tmp_path):
    first = prepare(
        "digits", "synthetic", tmp_path / "c1", synthetic_train_per_class=5, synthetic_test_per_class=2, progress=False
    )
    copy = prepare("digits", str(first), tmp_path / "c2", progress=False)
    for part in ("train", "test"):
        for a, b in zip(load_split(first, part), load_split(copy, part)):
            assert np.array_equal(a.numpy(), b.numpy())  # upright stays upright, class ids stay


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_hub_unreachable_or_offline_is_one_clear_line(tmp_path, monkeypatch, capsys, network):
    """The real snapshot_download, configured as HF_HUB_OFFLINE=1 or HF_ENDPOINT=<closed loopback port>
    would configure it (huggingface_hub reads those variables once, at import)."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    if network == "offline":
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    cache = tmp_path / "cache"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", "balanced", "--source", "hf:someone/emnist", "--cache-dir", str(cache)])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "Traceback" not in captured.err and captured.out == ""
    line = errors[0]
    assert "hf:someone/emnist: could not get the dataset from the Hugging Face Hub" in line
    assert ("offline mode (HF_HUB_OFFLINE) is on" if network == "offline" else "Hub unreachable (ConnectError") in line
    assert "pass a local copy instead: --source /path/to/gzip.zip" in line
    assert not cache.exists() or all(p.suffix == ".lock" for p in cache.iterdir())  # no dataset, at most a lock


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` 8-bit grey pixels (what PIL reads at open) over a tiny body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_huge_png_in_a_parquet_source_is_one_line_naming_its_row(tmp_path, capsys):
    raw = random_split("digits", 12, 4, seed=25)
    repo = tmp_path / "repo"
    for part in ("train", "test"):
        dataset = hub_image_dataset(getattr(raw, f"{part}_images"), getattr(raw, f"{part}_labels"), "digits")
        dataset.to_parquet(str(repo / "data" / f"{part}-00000-of-00001.parquet"))
    path = repo / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    images = table.column("image").combine_chunks()
    blobs = images.field("bytes").to_pylist()
    blobs[7] = png_header_only(20_000, 20_000)  # 400 megapixels: PIL's decompression-bomb limit refuses it at open
    bomb = pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), images.field("path")], names=["bytes", "path"])
    pq.write_table(table.set_column(table.schema.get_field_index("image"), "image", bomb), path)

    cache = tmp_path / "cache"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", "digits", "--source", str(repo), "--cache-dir", str(cache)])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "Traceback" not in captured.err
    assert errors[0].startswith(f"error: {path}: row 7: image too large to decode (Image size (400000000 pixels) "
                                "exceeds limit")
    assert errors[0].endswith(": expected 28x28")
    assert not cache.exists() or all(p.suffix == ".lock" for p in cache.iterdir())  # nothing cached

    blobs[7] = png_header_only(300, 200)  # under the limit: refused from its header, before decoding
    small = pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), images.field("path")], names=["bytes", "path"])
    pq.write_table(table.set_column(table.schema.get_field_index("image"), "image", small), path)
    with pytest.raises(UserError, match=r"row 7: the image is 300x200: expected 28x28$"):
        prepare("digits", str(repo), cache, progress=False)


def write_16_bit_png_source(repo, raw, scale: int) -> None:
    """Parquet files of ``raw`` whose images are 16-bit greyscale PNGs of the glyphs' values times ``scale``."""
    for part in ("train", "test"):
        images = getattr(raw, f"{part}_images")
        blobs = []
        for glyph in images:
            buffer = io.BytesIO()
            PILImage.fromarray(glyph.astype(np.uint16) * scale).save(buffer, format="PNG")
            blobs.append(buffer.getvalue())
        assert PILImage.open(io.BytesIO(blobs[0])).mode.startswith("I")  # really stored at 16 bits
        image = pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), pa.nulls(len(blobs), pa.string())],
                                           names=["bytes", "path"])
        labels = pa.array(getattr(raw, f"{part}_labels").astype(np.int64))
        (repo / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"image": image, "label": labels}), repo / "data" / f"{part}-00000-of-00001.parquet")


def test_16_bit_pngs_in_a_parquet_source_are_scaled_from_their_range(tmp_path):
    """A 16-bit greyscale PNG holds 0..65535: v * 257 is the 8-bit value v at 16 bits (65535 = 255 * 257)."""
    raw = random_split("digits", 30, 10, seed=26)
    write_16_bit_png_source(tmp_path / "repo", raw, scale=257)
    cache = prepare("digits", str(tmp_path / "repo"), tmp_path / "cache", progress=False)
    assert_matches(cache, raw)
    assert len(np.unique(load_split(cache, "train")[0].numpy())) > 200  # grey levels kept, not binarised


def test_16_bit_pngs_holding_8_bit_values_are_refused_naming_the_row(tmp_path):
    raw = random_split("digits", 30, 10, seed=27)
    write_16_bit_png_source(tmp_path / "repo", raw, scale=1)
    path = tmp_path / "repo" / "data" / "train-00000-of-00001.parquet"
    with pytest.raises(UserError) as err:
        prepare("digits", str(tmp_path / "repo"), tmp_path / "cache", progress=False)
    assert str(err.value) == (f"{path}: row 0: a 16-bit image whose values stay within 0..{raw.train_images[0].max()}: "
                              "expected values over the 16-bit range 0..65535, or an 8-bit image")
