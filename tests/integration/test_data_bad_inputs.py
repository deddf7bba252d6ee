"""Every bad input: one error line naming the file, what was wrong, what was expected; exit 2;
nothing left in the cache."""

import codecs
import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.helpers.emnist_raw import (
    idx_bytes,
    member_files,
    member_name,
    random_split,
    write_gz_folder,
    write_gzip_zip,
    write_idx_folder,
)
from tests.helpers.mnist_format import FASHION_CLASSES, random_mnist_format, write_mnist_format
from tests.helpers.peak_memory import run_measured

from emnist_dist.data import load_split, prepare
from emnist_dist.data.__main__ import main
from emnist_dist.cli import run_cli
from emnist_dist.data.dataset_io import dataset_class_names

SPLIT = "balanced"


def cli_error(capsys, cache: Path, source, split: str = SPLIT) -> str:
    """Run ``prepare`` through the CLI; assert exit 2, a single error line, no traceback, no dataset."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", split, "--source", str(source), "--cache-dir", str(cache)])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and captured.err.rstrip().endswith(errors[0])
    assert "Traceback" not in captured.err and captured.out == ""
    assert_no_dataset(cache)
    return errors[0]


def assert_no_dataset(cache: Path) -> None:
    """The cache holds no dataset, finished or partial (a resumable download and empty lock files may stay)."""
    leftovers = (
        [p for p in cache.rglob("*") if "downloads" not in p.relative_to(cache).parts and p.suffix != ".lock"]
        if cache.exists()
        else []
    )
    assert leftovers == []


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.fixture
def raw():
    return random_split(SPLIT, 60, 20, seed=1)


@pytest.fixture
def gz_folder(tmp_path, raw):
    return write_gz_folder(tmp_path / "src", raw)


def member(folder: Path, part: str, kind: str, suffix: str = ".gz") -> Path:
    return folder / (member_name(SPLIT, part, kind) + suffix)


def test_truncated_gzip(tmp_path, capsys, gz_folder):
    path = member(gz_folder, "train", "images-idx3")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert str(path) in line and "truncated" in line and "expected a complete .gz file" in line


def test_member_that_is_not_gzip(tmp_path, capsys, gz_folder, raw):
    path = member(gz_folder, "train", "labels-idx1")
    path.write_bytes(idx_bytes(raw.train_labels))  # plain IDX under a .gz name
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert str(path) in line and "not a valid gzip stream" in line and "expected a gzip-compressed IDX file" in line


def test_wrong_idx_magic(tmp_path, capsys, gz_folder, raw):
    path = member(gz_folder, "test", "images-idx3")
    path.write_bytes(gz(idx_bytes(raw.test_images, magic=2049)))
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert str(path) in line and "magic number 2049" in line and "expected 2051" in line


def test_wrong_image_size(tmp_path, capsys, gz_folder):
    path = member(gz_folder, "train", "images-idx3")
    path.write_bytes(gz(idx_bytes(np.zeros((60, 32, 32), np.uint8))))
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert str(path) in line and "32x32" in line and "expected 28x28" in line


def test_image_label_count_mismatch(tmp_path, capsys, gz_folder, raw):
    path = member(gz_folder, "train", "labels-idx1")
    path.write_bytes(gz(idx_bytes(raw.train_labels[:-1])))
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert "holds 60 images" in line and f"{path} holds 59 labels" in line and "expected equal counts" in line


def test_payload_shorter_than_header(tmp_path, capsys, raw):
    folder = write_idx_folder(tmp_path / "idx", raw)
    path = member(folder, "test", "images-idx3", suffix="")
    path.write_bytes(path.read_bytes()[:-100])
    line = cli_error(capsys, tmp_path / "cache", folder)
    assert str(path) in line and "payload has 15580 bytes" in line and "20x28x28 = 15680" in line


def test_payload_longer_than_header(tmp_path, capsys, raw):
    folder = write_idx_folder(tmp_path / "idx", raw)
    path = member(folder, "test", "labels-idx1", suffix="")
    path.write_bytes(path.read_bytes() + b"\0")
    line = cli_error(capsys, tmp_path / "cache", folder)
    assert str(path) in line and "payload longer" in line


def test_label_outside_the_splits_classes(tmp_path, capsys, gz_folder, raw):
    labels = raw.test_labels.copy()
    labels[7] = 47  # balanced has 47 classes: 0..46
    path = member(gz_folder, "test", "labels-idx1")
    path.write_bytes(gz(idx_bytes(labels)))
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert (
        str(path) in line
        and "label 47 is outside the 47 classes of balanced" in line
        and "expected labels 0..46" in line
    )


def test_letters_label_zero_is_outside(tmp_path, capsys):
    raw = random_split("letters", 30, 10)
    raw.train_labels[0] = 0  # letters' raw labels run 1..26
    folder = write_gz_folder(tmp_path / "src", raw)
    line = cli_error(capsys, tmp_path / "cache", folder, split="letters")
    assert "label 0 is outside the 26 classes of letters" in line and "expected labels 1..26" in line


def test_missing_member_in_folder(tmp_path, capsys, gz_folder):
    member(gz_folder, "test", "labels-idx1").unlink()
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert str(gz_folder) in line and "emnist-balanced-test-labels-idx1-ubyte[.gz] is missing" in line


def test_missing_member_in_zip(tmp_path, capsys, raw):
    full = write_gzip_zip(tmp_path / "full.zip", raw)
    archive = tmp_path / "gzip.zip"
    with zipfile.ZipFile(full) as src, zipfile.ZipFile(archive, "w") as dst:
        for name in src.namelist():
            if "train-images" not in name:
                dst.writestr(name, src.read(name))
    line = cli_error(capsys, tmp_path / "cache", archive)
    assert str(archive) in line and "no member emnist-balanced-train-images-idx3-ubyte.gz" in line


@pytest.mark.parametrize("where", ["beside", "under gzip/"])
def test_two_copies_of_a_member_that_differ_are_refused_naming_both(tmp_path, capsys, gz_folder, raw, where):
    """``x.gz`` beside an extracted ``x`` (or a second copy under ``gzip/``) holding other images: refused, since
    reading one of them would pick the data silently."""
    other = random_split(SPLIT, 60, 20, seed=2)
    extracted = gz_folder / ("." if where == "beside" else "gzip") / member_name(SPLIT, "train", "images-idx3")
    extracted.parent.mkdir(exist_ok=True)
    extracted.write_bytes(idx_bytes(other.train_images))
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    first = member(gz_folder, "train", "images-idx3")
    assert line == (f"error: {first} and {extracted}: two copies of one file with different content: "
                    "expected one copy (remove the wrong one)")

    extracted.write_bytes(idx_bytes(raw.train_images))  # the same images (gunzip -k): read, once
    cache = prepare(SPLIT, str(gz_folder), tmp_path / "cache", progress=False)
    assert np.array_equal(load_split(cache, "train")[0][:, 0].numpy(), raw.train_images.transpose(0, 2, 1))


def test_two_copies_of_a_member_in_a_zip_that_differ_are_refused(tmp_path, capsys, raw):
    archive = write_gzip_zip(tmp_path / "gzip.zip", raw)
    name = member_name(SPLIT, "test", "labels-idx1")
    with zipfile.ZipFile(archive, "a") as zipped:
        zipped.writestr(f"extracted/{name}", idx_bytes((raw.test_labels + 1) % 47))
    line = cli_error(capsys, tmp_path / "cache", archive)
    assert line == (f"error: {archive}:gzip/{name}.gz and {archive}:extracted/{name}: two copies of one file with "
                    "different content: expected one copy (remove the wrong one)")


def test_split_not_in_the_folder(tmp_path, capsys, gz_folder):
    line = cli_error(capsys, tmp_path / "cache", gz_folder, split="digits")
    assert str(gz_folder) in line and "no EMNIST digits files found" in line


def test_empty_archive_file(tmp_path, capsys):
    archive = tmp_path / "gzip.zip"
    archive.touch()
    line = cli_error(capsys, tmp_path / "cache", archive)
    assert str(archive) in line and "empty file" in line


def test_empty_member(tmp_path, capsys, gz_folder):
    path = member(gz_folder, "train", "images-idx3", suffix="")
    member(gz_folder, "train", "images-idx3").unlink()
    path.touch()
    line = cli_error(capsys, tmp_path / "cache", gz_folder)
    assert str(path) in line and "empty file" in line


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = cli_error(capsys, tmp_path / "cache", tmp_path / "empty")
    assert str(tmp_path / "empty") in line and "empty folder" in line


def test_corrupt_zip(tmp_path, capsys):
    archive = tmp_path / "gzip.zip"
    archive.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    line = cli_error(capsys, tmp_path / "cache", archive)
    assert str(archive) in line and "not a readable zip archive" in line and "expected the EMNIST gzip.zip" in line


def test_damaged_bytes_inside_a_zip_member(tmp_path, capsys, raw):
    archive = write_gzip_zip(tmp_path / "gzip.zip", raw)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(f"gzip/{member_name(SPLIT, 'train', 'images-idx3')}.gz")
    data = bytearray(archive.read_bytes())
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle : middle + 8] = bytes(8 - i for i in range(8))
    archive.write_bytes(bytes(data))
    line = cli_error(capsys, tmp_path / "cache", archive)
    # noise images are stored (not deflated) inside the .gz, so the zip's CRC-32 is what catches it
    assert f"{archive}:{info.filename}" in line and "Bad CRC-32" in line and "expected an intact file" in line


def test_missing_path(tmp_path, capsys):
    line = cli_error(capsys, tmp_path / "cache", tmp_path / "nowhere.zip")
    assert (
        "nowhere.zip" in line and "no such file or folder" in line and "expected nist, synthetic, hf:OWNER/NAME" in line
    )


def test_unknown_split(tmp_path, capsys, gz_folder):
    line = cli_error(capsys, tmp_path / "cache", gz_folder, split="bytes")
    assert "unknown EMNIST split 'bytes'" in line and "byclass, bymerge, balanced, letters, digits, mnist" in line


def test_unsupported_file(tmp_path, capsys):
    path = tmp_path / "emnist.tar"
    path.write_bytes(b"x" * 10)
    line = cli_error(capsys, tmp_path / "cache", path)
    assert str(path) in line and "expected gzip.zip, a .parquet file, or a folder" in line


def test_bad_synthetic_size(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            main,
            [
                "prepare",
                "--source",
                "synthetic",
                "--synthetic-train-per-class",
                "0",
                "--cache-dir",
                str(tmp_path / "c"),
            ],
        )
    assert exit_info.value.code == 2
    assert "synthetic_train_per_class=0: expected an integer >= 1" in capsys.readouterr().err
    assert_no_dataset(tmp_path / "c")


# --- MNIST-format folders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines, found",
    [
        (["shirt"] * 10, "10 lines (0 blank, 9 repeated)"),
        ([f"c{i}" for i in range(9)], "9 lines (0 blank, 0 repeated)"),
        ([f"c{i}" for i in range(5)] + [""] + [f"c{i}" for i in range(6, 10)], "10 lines (1 blank, 0 repeated)"),
        # names a trained model's folder would be refused with (predict, evaluate): refused before training
        ([f"c{i}" for i in range(4)] + ["Coat\x07"] + [f"c{i}" for i in range(5, 10)],
         "name 4 is 'Coat\\x07', not visible printable text"),
        ([f"c{i}" for i in range(9)] + ["Bag\u200b"], "name 9 is 'Bag\\u200b', not visible printable text"),
    ],
    ids=["repeated", "nine", "blank", "control character", "zero-width space"],
)
def test_mnist_format_bad_classes_txt(tmp_path, capsys, lines, found):
    folder = random_mnist_format(tmp_path / "src", 20, 10, seed=0, classes=lines)
    line = cli_error(capsys, tmp_path / "cache", folder, split="mnist")
    assert str(folder / "classes.txt") in line and found in line
    assert "expected 10 distinct class names, one a line in label order" in line


def test_mnist_format_classes_txt_with_a_byte_order_mark(tmp_path):
    """Windows editors save UTF-8 with a byte-order mark (and CRLF line ends): the names are the text's."""
    folder = random_mnist_format(tmp_path / "src", 20, 10, seed=0)
    (folder / "classes.txt").write_bytes(codecs.BOM_UTF8 + "".join(f"{n}\r\n" for n in FASHION_CLASSES).encode())
    cache = prepare("mnist", str(folder), tmp_path / "cache", progress=False)
    assert dataset_class_names(cache) == FASHION_CLASSES


def test_mnist_format_for_another_split(tmp_path, capsys):
    folder = random_mnist_format(tmp_path / "src", 20, 10, seed=0)
    line = cli_error(capsys, tmp_path / "cache", folder, split="digits")
    assert str(folder) in line and "expected --split mnist, not digits" in line


def test_mnist_format_missing_file(tmp_path, capsys):
    folder = random_mnist_format(tmp_path / "src", 20, 10, seed=0)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    line = cli_error(capsys, tmp_path / "cache", folder, split="mnist")
    assert str(folder) in line and "t10k-labels-idx1-ubyte[.gz] is missing" in line


def test_mnist_format_label_outside_ten_classes(tmp_path, capsys):
    images = np.zeros((3, 28, 28), np.uint8)
    folder = write_mnist_format(tmp_path / "src", (images, np.array([0, 10, 1], np.uint8)),
                                (images, np.array([0, 1, 2], np.uint8)))
    line = cli_error(capsys, tmp_path / "cache", folder, split="mnist")
    assert str(folder / "train-labels-idx1-ubyte.gz") in line and "label 10 is outside the 10 classes" in line


@pytest.mark.parametrize("part", ["train", "test"])
def test_a_part_with_zero_images_is_refused_naming_it(tmp_path, capsys, raw, part):
    setattr(raw, f"{part}_images", getattr(raw, f"{part}_images")[:0])
    setattr(raw, f"{part}_labels", getattr(raw, f"{part}_labels")[:0])
    folder = write_gz_folder(tmp_path / "src", raw)
    line = cli_error(capsys, tmp_path / "cache", folder)
    assert f"the {part} part of {SPLIT} holds 0 images" in line and str(folder) in line


def test_an_empty_parquet_table_is_refused_naming_the_part(tmp_path, capsys, raw):
    for part, rows in (("train", 0), ("test", 5)):
        images = getattr(raw, f"{part}_images")[:rows]
        table = pa.table({"image": pa.array(images.reshape(rows, 28 * 28).tolist(), pa.list_(pa.uint8())),
                          "label": pa.array(getattr(raw, f"{part}_labels")[:rows], pa.int64())})
        pq.write_table(table, tmp_path / f"{part}.parquet")
    line = cli_error(capsys, tmp_path / "cache", tmp_path / "train.parquet")
    assert f"the train part of {SPLIT} holds 0 images" in line


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "plain"])
def test_a_header_claiming_a_billion_images_over_a_few_bytes_is_one_line(tmp_path, capsys, raw, compressed):
    folder = write_gz_folder(tmp_path / "src", raw) if compressed else write_idx_folder(tmp_path / "src", raw)
    path = member(folder, "train", "images-idx3", suffix=".gz" if compressed else "")
    data = struct.pack(">IIII", 2051, 10**9, 28, 28) + bytes(100)
    path.write_bytes(gz(data) if compressed else data)
    line = cli_error(capsys, tmp_path / "cache", folder)
    if compressed:
        assert str(path) in line and "1000000000x28x28 = 784000000000" in line and "compressed bytes" in line
    else:  # the labels beside it hold 60: refused by the count before the payload is read
        assert line.startswith(f"error: {path} holds 1000000000 images but ") and "holds 60 labels" in line


def gzip_bomb(payload: bytes, zeros: int) -> bytes:
    """A valid gzip file of ``payload`` then ``zeros`` zero bytes (a multiple of 16 MiB), in about 1/1000 the size.

    Built without compressing all the zeros: after a full flush deflate starts afresh, so one flushed 16 MiB piece
    of zeros is the same bytes each time and is repeated; the trailer holds the CRC-32 and length of the whole.
    """
    piece_size = 1 << 24
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # a raw deflate stream; the gzip wrapper is written here
    head = deflate.compress(payload) + deflate.flush(zlib.Z_FULL_FLUSH)
    piece = deflate.compress(bytes(piece_size)) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(payload)
    for _ in range(zeros // piece_size):
        crc = zlib.crc32(bytes(piece_size), crc)
    size = (len(payload) + zeros) & 0xFFFFFFFF
    return (b"\x1f\x8b\x08\0\0\0\0\0\2\xff" + head + piece * (zeros // piece_size) + deflate.flush()
            + struct.pack("<II", crc, size))


def prepare_peak_mb(source: Path, cache: Path) -> tuple[int, str, float]:
    """``python -m emnist_dist.data prepare --split mnist`` in a child process: exit code, stderr, peak memory (MB)."""
    run = run_measured("emnist_dist.data", ["prepare", "--split", "mnist", "--source", str(source), "--cache-dir",
                                            str(cache)], cache.parent / "status.txt", threads=None)
    return run.returncode, run.stderr, run.peak_mb


def test_a_decompression_bomb_is_refused_in_bounded_memory(tmp_path):
    """Found by the hostile pass: a 1.5 MB .gz expanding to 1.5 GB took 13 s and 3.1 GB before it was refused.
    Inflation now stops one byte past the size the header states (here 512 MiB of zeros follow 100 glyphs)."""
    good = random_mnist_format(tmp_path / "good", 100, 20, seed=0)
    code, err, good_peak = prepare_peak_mb(good, tmp_path / "cache")
    assert code == 0, err
    bomb = random_mnist_format(tmp_path / "bomb", 100, 20, seed=0)
    path = bomb / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_bomb(gzip.decompress(path.read_bytes()), 1 << 29))
    with gzip.open(path) as inflated:  # a true gzip file (its CRC-32 and length checked), read in pieces
        size = sum(len(piece) for piece in iter(lambda: inflated.read(1 << 24), b""))
    assert path.stat().st_size < 700_000 and size == 16 + 78_400 + (1 << 29)
    code, err, bomb_peak = prepare_peak_mb(bomb, tmp_path / "cache")
    assert code == 2 and err.endswith(f"\nerror: {path}: payload longer than the header's 100x28x28 (78400 bytes): "
                                      "expected exactly that\n") and "Traceback" not in err
    assert bomb_peak < good_peak + 64, (bomb_peak, good_peak)
    assert not any(p.suffix != ".lock" and "bomb" in p.name for p in (tmp_path / "cache").rglob("*"))


def test_a_zip_member_deflated_to_far_more_than_its_header_says_is_refused_in_bounded_memory(tmp_path, raw):
    """An extracted (not .gz) IDX member inside the zip, deflated: 256 MiB of zeros after the glyphs its header
    announces. Reading stops one byte past the header's size, as for a .gz member."""
    def write_zip(path: Path, padding: int) -> Path:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in member_files(raw).items():
                with archive.open(f"gzip/{name}", "w", force_zip64=True) as member:
                    member.write(data)
                    if "train-images" in name:
                        for _ in range(padding >> 24):
                            member.write(bytes(1 << 24))
        return path

    def prepare(source: Path):
        return run_measured("emnist_dist.data", ["prepare", "--split", SPLIT, "--source", str(source), "--cache-dir",
                                                 str(tmp_path / "cache")], tmp_path / "status.txt", threads=None)

    good = prepare(write_zip(tmp_path / "good.zip", 0))
    assert good.returncode == 0, good.stderr
    bomb = write_zip(tmp_path / "bomb.zip", 1 << 28)
    with zipfile.ZipFile(bomb) as archive:
        member = next(i for i in archive.infolist() if "train-images" in i.filename)
    assert bomb.stat().st_size < 1_000_000 and member.file_size == 16 + 60 * 784 + (1 << 28)
    refused = prepare(bomb)
    error = refused.stderr.splitlines()[-1]
    assert refused.returncode == 2 and error.startswith("error: ") and member.filename in error, refused.stderr
    assert error.endswith("payload longer than the header's 60x28x28 (47040 bytes): expected exactly that")
    assert "Traceback" not in refused.stderr
    assert refused.peak_mb < good.peak_mb + 64, (refused.peak_mb, good.peak_mb)


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_a_classes_txt_that_is_no_regular_file_is_refused(tmp_path, capsys, kind):
    """Found by the hostile pass: a classes.txt folder or dangling link was skipped and the names became 0-9."""
    folder = random_mnist_format(tmp_path / "src", 20, 10, seed=0)
    classes = folder / "classes.txt"
    classes.mkdir() if kind == "folder" else classes.symlink_to(tmp_path / "nowhere")
    line = cli_error(capsys, tmp_path / "cache", folder, split="mnist")
    assert str(classes) in line and "not a regular file" in line
