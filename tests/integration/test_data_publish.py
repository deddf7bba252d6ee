"""``publish``: every split of NIST-format test data -> a Hub dataset folder -> ``load_dataset`` and ``prepare``."""

import hashlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from datasets import ClassLabel, Features, Image, load_dataset
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData, constants as hf_constants, metadata_load

from emnist_dist.data import load_split, prepare
from emnist_dist.data.__main__ import main
from emnist_dist.data import publish as publish_module
from emnist_dist.data.dataset_io import dataset_class_names
from emnist_dist.data.publish import publish
from emnist_dist.cli import run_cli
from emnist_dist.errors import UserError
from tests.helpers.emnist_raw import SPLIT_CHARS, random_split, raw_label_range, write_gz_folder, write_gzip_zip
from tests.helpers.mnist_format import FASHION_CLASSES, random_mnist_format

ALL = list(SPLIT_CHARS)
SHARD_BYTES = 5_000  # small enough that every part of the test data is cut into several shards
RESOURCES = Path(datasets.__file__).parent / "utils" / "resources"  # datasets' own vocabularies for card fields


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """All six splits written as NIST's gzip.zip, then published from it."""
    root = tmp_path_factory.mktemp("publish")
    raws = {name: random_split(name, 3 * len(chars) + 5, len(chars) + 3, seed=40 + i)
            for i, (name, chars) in enumerate(SPLIT_CHARS.items())}
    archive = write_gzip_zip(root / "gzip.zip", *raws.values())
    out = publish(ALL, str(archive), root / "hub", cache_dir=root / "cache", max_shard_bytes=SHARD_BYTES,
                  progress=False)
    return root, archive, raws, out


def upright(images):
    return images.transpose(0, 2, 1)


@pytest.mark.parametrize("split", ALL)
def test_every_split_round_trips_through_load_dataset_and_prepare(published, split):
    root, archive, raws, out = published
    raw, first_label = raws[split], raw_label_range(split)[0]
    loaded = load_dataset(str(out), split, cache_dir=str(root / f"hf-{split}"))
    assert loaded["train"].features["label"].names == list(SPLIT_CHARS[split])
    for part in ("train", "test"):
        rows = loaded[part]
        assert len(list((out / split).glob(f"{part}-*-of-*.parquet"))) > 1  # really sharded, read in order
        pixels = np.stack([np.asarray(image) for image in rows["image"]])
        assert np.array_equal(pixels, upright(getattr(raw, f"{part}_images")))  # upright, lossless
        assert rows["label"] == (getattr(raw, f"{part}_labels").astype(int) - first_label).tolist()

    from_nist = prepare(split, str(archive), root / "cache", progress=False)
    from_hub = prepare(split, str(out), root / "cache-from-hub", progress=False)
    for part in ("train", "test"):
        for a, b in zip(load_split(from_nist, part), load_split(from_hub, part)):
            assert np.array_equal(a.numpy(), b.numpy())


def test_the_card_passes_the_hub_libraries_checks(published):
    root, archive, raws, out = published
    path = out / "README.md"
    card = DatasetCard.load(path)
    meta = card.data.to_dict()
    assert metadata_load(path) == meta
    assert DatasetCardData(**meta).to_dict() == meta  # the metadata survives huggingface_hub's round trip

    assert set(meta["size_categories"]) <= set(json.loads((RESOURCES / "size_categories.json").read_text()))
    assert set(meta["annotations_creators"]) <= set(json.loads((RESOURCES / "creators.json").read_text())["annotations"])
    assert meta["license"] == "other" and meta["license_name"] and meta["license_link"].startswith("https://www.nist.gov/")
    assert meta["task_categories"] == ["image-classification"]

    # what load_dataset reads from the card: the configs and each config's features and sizes
    assert sorted(MetadataConfigs.from_dataset_card_data(card.data)) == sorted(ALL)
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    for name, raw in raws.items():
        assert infos[name].features == Features({"image": Image(), "label": ClassLabel(names=list(SPLIT_CHARS[name]))})
        assert {s.name: s.num_examples for s in infos[name].splits.values()} == {
            "train": len(raw.train_labels), "test": len(raw.test_labels)}

    text = card.text
    assert f"`gzip.zip`: md5 `{hashlib.md5(archive.read_bytes()).hexdigest()}`" in text
    assert "--split all --source gzip.zip --out DIR" in text and str(root) not in str(card)  # no local folders
    assert "transposed" in text and "Cohen" in text and "@inproceedings{cohen2017emnist" in text
    assert "python -m emnist_dist.audit" in text and "load_dataset(" in text
    # per-class counts: the row of letters' class 'c' (raw label 3)
    letters = raws["letters"]
    row = f"| 2 | `c` | {int((letters.train_labels == 3).sum())} | {int((letters.test_labels == 3).sum())} |"
    assert text.split("### letters")[1].split("###")[0].count(row) == 1


def small_publish(tmp_path, *extra):
    out = tmp_path / "hub"
    argv = ["publish", "--split", "digits", "--source", "synthetic", "--synthetic-train-per-class", "3",
            "--synthetic-test-per-class", "2", "--cache-dir", str(tmp_path / "cache"), "--out", str(out), *extra]
    return out, argv


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured


def test_an_out_folder_holding_other_files_is_refused_and_kept(tmp_path, capsys):
    out, argv = small_publish(tmp_path)
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, captured = run_main(argv, capsys)
    assert code == 2 and captured.err.strip().splitlines() == [
        f"error: --out {out}: exists and holds other files (notes.txt, ...): expected a new or empty folder, or one "
        "that publish wrote for digits"]
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"

    (out / "notes.txt").unlink()  # an empty folder is fine; publishing again keeps the folder as it is
    assert run_main(argv, capsys)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    code, captured = run_main(argv, capsys)
    assert code == 0 and "already holds the published digits from the same source: kept as it is" in captured.err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_a_published_folder_that_disagrees_with_its_card_is_one_line(tmp_path, capsys):
    out, argv = small_publish(tmp_path)
    assert run_main(argv, capsys)[0] == 0
    with pytest.raises(UserError, match=r"README.md: a published EMNIST dataset with configs digits: expected a "
                                        r"mnist config"):
        prepare("mnist", str(out), tmp_path / "c1", progress=False)
    (shard,) = (out / "digits").glob("test-*.parquet")
    shard.unlink()
    with pytest.raises(UserError, match=r"the digits test files hold 0 rows in 0 files: expected 20 as README.md says"):
        prepare("digits", str(out), tmp_path / "c2", progress=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("hub", ["no token", "offline", "unreachable"])
def test_repo_id_without_token_or_network_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, hub):
    """huggingface_hub reads HF_HUB_OFFLINE / HF_ENDPOINT once, at import: set as those variables would set them."""
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    if hub == "no token":
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    if hub == "offline":
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    if hub == "unreachable":
        monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    out, argv = small_publish(tmp_path, "--repo-id", "someone/emnist")
    code, captured = run_main(argv, capsys)
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err, captured.err
    expected = {
        "no token": "error: --repo-id someone/emnist: no Hugging Face token: expected `hf auth login` or HF_TOKEN set",
        "offline": "error: --repo-id someone/emnist: the Hub cannot be reached or refused the token: "
                   "OfflineModeIsEnabled: ",
        "unreachable": "error: --repo-id someone/emnist: the Hub cannot be reached or refused the token: ConnectError",
    }[hub]
    assert lines[0].startswith(expected)
    assert not out.exists() and not (tmp_path / "cache").exists()  # refused before preparing anything


def test_a_published_repo_in_the_hub_cache_is_an_hf_source(published, tmp_path, monkeypatch):
    """``hf:OWNER/NAME`` of a pushed folder, offline, from huggingface_hub's cache as a download leaves it."""
    root, archive, raws, out = published
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_cache = tmp_path / "hub" / "datasets--someone--emnist"
    shutil.copytree(out, repo_cache / "snapshots" / commit)
    (repo_cache / "refs").mkdir()
    (repo_cache / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    from_hub = prepare("letters", "hf:someone/emnist", tmp_path / "cache", progress=False)
    from_nist = prepare("letters", str(archive), root / "cache", progress=False)
    for part in ("train", "test"):
        for a, b in zip(load_split(from_nist, part), load_split(from_hub, part)):
            assert np.array_equal(a.numpy(), b.numpy())


def test_a_file_appearing_in_out_while_publish_runs_is_kept_and_so_is_the_published_folder(tmp_path, monkeypatch):
    """--out is empty at the start; the user saves a file into it while the shards are written (here: when the
    card is made, the last step before the folder is moved into place)."""
    out = tmp_path / "hub"
    out.mkdir()
    real_card = publish_module.dataset_card

    def card_while_the_user_writes(*args, **kwargs):
        (out / "notes.txt").write_text("mine")
        return real_card(*args, **kwargs)

    monkeypatch.setattr(publish_module, "dataset_card", card_while_the_user_writes)
    with pytest.raises(UserError) as err:
        publish(["digits"], "synthetic", out, cache_dir=tmp_path / "cache", synthetic_train_per_class=3,
                synthetic_test_per_class=2, progress=False)
    kept = tmp_path / "hub.published-1"
    assert str(err.value) == (f"--out {out}: files appeared in it while publish ran: kept them untouched; the "
                              f"published folder is {kept}: expected --out to stay empty until publish ends")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "hub", "hub.published-1"]  # no temporaries
    loaded = load_dataset(str(kept), "digits", cache_dir=str(tmp_path / "hf"))
    assert len(loaded["train"]) == 30 and len(loaded["test"]) == 20


def test_out_as_a_link_to_an_empty_folder_is_written_through(tmp_path, capsys):
    target = tmp_path / "disk" / "emnist"
    target.mkdir(parents=True)
    link = tmp_path / "hub"
    link.symlink_to(target)
    _, argv = small_publish(tmp_path)
    code, captured = run_main(argv, capsys)
    assert code == 0, captured.err
    assert link.is_symlink() and link.resolve() == target
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "digits"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "disk", "hub"]  # nothing left beside the link
    assert [p.name for p in target.parent.iterdir()] == ["emnist"]  # nor beside the folder
    code, captured = run_main(argv, capsys)  # publishing again through the link: kept as it is
    assert code == 0 and "already holds the published digits from the same source" in captured.err


def test_sigterm_during_publish_leaves_nothing_behind(tmp_path):
    raw = random_split("digits", 40_000, 20, seed=5)  # noise glyphs: several seconds of PNG encoding
    archive = write_gzip_zip(tmp_path / "gzip.zip", raw)
    prepare("digits", str(archive), tmp_path / "cache", progress=False)
    out = tmp_path / "hub"
    process = subprocess.Popen([sys.executable, "-m", "emnist_dist.data", "publish", "--split", "digits", "--source",
                                str(archive), "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".hub.tmp-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(tmp_path.glob(".hub.tmp-*")), "publish ended before it started writing"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "gzip.zip"]  # no .hub.tmp-PID, no hub


def test_out_inside_the_source_folder_is_not_listed_as_a_source_file(tmp_path, capsys):
    raw = random_split("digits", 40, 20, seed=6)
    source = write_gz_folder(tmp_path / "emnist", raw)
    members = sorted(p.name for p in source.iterdir())
    out = source / "hub"
    code, captured = run_main(["publish", "--split", "digits", "--source", str(source), "--cache-dir",
                               str(tmp_path / "cache"), "--out", str(out)], capsys)
    assert code == 0, captured.err
    listed = re.findall(r"^- `([^`]+)`: md5 `([0-9a-f]{32})`", (out / "README.md").read_text(), re.MULTILINE)
    assert listed == [(name, hashlib.md5((source / name).read_bytes()).hexdigest()) for name in members]
    # the source folder now holds the published one: publishing again compares only the source's own files
    code, captured = run_main(["publish", "--split", "digits", "--source", str(source), "--cache-dir",
                               str(tmp_path / "cache"), "--out", str(out)], capsys)
    assert code == 0 and "from the same source: kept as it is" in captured.err


def test_publishing_into_a_published_folder_from_another_source_is_refused_naming_both(tmp_path, capsys):
    out, argv = small_publish(tmp_path)
    assert run_main(argv, capsys)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, captured = run_main([*argv, "--seed", "7"], capsys)
    assert code == 2 and captured.err.strip().splitlines() == [
        f"error: --out {out}: holds digits published from another source (its card: emnist_dist's synthetic "
        "stand-in (no archive): train per class 3, test per class 2, seed 0.; this source: emnist_dist's synthetic "
        "stand-in (no archive): train per class 3, test per class 2, seed 7.): expected the same source, or a new "
        "or empty folder"]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    archive = write_gzip_zip(tmp_path / "gzip.zip", random_split("digits", 40, 20, seed=8))
    code, captured = run_main([*argv[:4], str(archive), *argv[5:]], capsys)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    assert code == 2 and f"; this source: Local files (md5 of each):): " not in captured.err
    assert f"; this source: `gzip.zip`: md5 `{md5}`): expected the same source" in captured.err


def test_a_published_folder_holding_another_file_is_not_reused(tmp_path, capsys):
    """Found by the hostile pass: publishing again kept the folder, a user's file in it included (and would have
    uploaded it with --repo-id)."""
    out, argv = small_publish(tmp_path)
    assert run_main(argv, capsys)[0] == 0
    (out / "digits" / "notes.txt").write_text("mine")
    code, captured = run_main(argv, capsys)
    assert code == 2 and captured.err.strip().splitlines()[-1] == (
        f"error: --out {out}: holds the published digits and files publish did not write (digits/notes.txt): "
        "expected only its card and Parquet files (move the others out)")
    assert (out / "digits" / "notes.txt").read_text() == "mine"
    (out / "digits" / "notes.txt").unlink()
    assert run_main(argv, capsys)[0] == 0  # its own files alone: re-used


def test_an_mnist_format_folder_is_published_with_its_class_names_and_as_what_it_is(tmp_path):
    source = random_mnist_format(tmp_path / "fashion-mnist", 40, 20, seed=9, classes=FASHION_CLASSES)
    out = publish(["mnist"], str(source), tmp_path / "hub", cache_dir=tmp_path / "cache", progress=False)
    loaded = load_dataset(str(out), "mnist", cache_dir=str(tmp_path / "hf"))
    assert loaded["train"].features["label"].names == FASHION_CLASSES

    card = DatasetCard.load(out / "README.md")
    assert card.data.pretty_name == "fashion-mnist (MNIST format, not EMNIST)" and card.data.license == "unknown"
    assert "EMNIST (Cohen" not in card.text and "NIST" not in card.text.replace("MNIST", "")
    assert "| 0 | `T-shirt/top` | 4 | 2 |" in card.text and "class id -> name" in card.text

    from_source = prepare("mnist", str(source), tmp_path / "cache", progress=False)
    from_hub = prepare("mnist", str(out), tmp_path / "cache-from-hub", progress=False)
    assert dataset_class_names(from_hub) == dataset_class_names(from_source) == FASHION_CLASSES
    for part in ("train", "test"):
        for a, b in zip(load_split(from_source, part), load_split(from_hub, part)):
            assert np.array_equal(a.numpy(), b.numpy())
