"""``publish``: EMNIST splits as a Hugging Face Hub dataset folder (Parquet + a dataset card), optionally uploaded.

Every split is prepared first (:func:`~.cache.prepare`), so the published pixels and labels are
exactly the cache's: upright, class ids (letters 0..25). Each part becomes Parquet shards of
``image`` (a ``datasets`` Image, PNG) and ``label`` (ClassLabel), written by ``Dataset.to_parquet``
and laid out as ``push_to_hub`` lays out a repository of several configs (see :mod:`.hub_folder`),
so ``datasets.load_dataset(DIR, SPLIT)`` reads it, and so does ``prepare --source DIR``.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import datasets
import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetInfo, Features, Image
from datasets.info import DatasetInfosDict
from datasets.table import InMemoryTable
from PIL import Image as PILImage
from tqdm import tqdm

from ..errors import UserError, one_line
from ..files import fsync_tree, temporary_sibling, write_error
from .cache import prepare, say
from .dataset_io import PARTS, dataset_class_names, load_split
from .dataset_card import card_source_lines, dataset_card, source_lines
from .hub_folder import CARD_FILE, published_configs, shard_path
from .splits import SplitInfo, get_split

MAX_SHARD_BYTES = 500 * 10**6
"""Shards are cut below this many bytes of Arrow data: ``push_to_hub``'s default ``max_shard_size``."""



@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence the ``datasets`` progress bars while writing (``publish`` reports itself)."""
    silence = not datasets.utils.are_progress_bars_disabled()
    if silence:
        datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        if silence:
            datasets.utils.enable_progress_bars()

def publish(
    splits: Sequence[str],
    source: str,
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
    repo_id: str | None = None,
    private: bool = False,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    progress: bool = True,
    **prepare_args,
) -> Path:
    """Write ``splits`` from ``source`` as a Hub dataset folder ``out``; with ``repo_id``, upload it.

    Args:
        splits: EMNIST split names (each becomes a config).
        source: any source of ``prepare`` (``nist``, a local path, ``hf:OWNER/NAME``, ``synthetic``).
        out: a new or empty folder (a symbolic link to one is written through). A folder this function wrote
            before for the same splits from the same source is kept as it is and only uploaded (so an
            interrupted upload resumes by running the same command); one from another source is refused.
        cache_dir: ``prepare``'s cache root.
        repo_id: ``OWNER/NAME`` of a Hub dataset repository to create (if needed) and upload to.
        private: create the repository private.
        max_shard_bytes: Arrow bytes per Parquet shard at most.
        progress: progress on stderr.
        prepare_args: further ``prepare`` arguments (the synthetic source's size and seed, mirrors).

    Raises:
        UserError: a bad split or source, ``out`` holding something else (also when it appears while
            publish runs: the finished folder is then kept beside it), no Hub token or no network (checked
            before any work), a failed upload (the folder stays complete for a retry).
    """
    infos = [get_split(name) for name in dict.fromkeys(splits)]
    given = Path(out).expanduser()
    out = given.resolve() if given.is_symlink() else given  # written through a link, never replacing it
    if repo_id is not None:
        _check_hub_access(repo_id)
    # Before anything is written: an --out inside the source folder is no source file.
    origin = source_lines(source, out, prepare_args)
    if _already_published(given, out, [info.name for info in infos], origin):
        say(progress, f"{given} already holds the published {', '.join(i.name for i in infos)} from the same "
                       "source: kept as it is (remove it to publish again)")
    else:
        with _sigterm_as_exit():
            write_hub_folder(out, infos, source, origin, cache_dir, max_shard_bytes, progress, repo_id,
                             **prepare_args)
    if repo_id is not None:
        upload(out, repo_id, private)
        say(progress, f"uploaded {out} to https://huggingface.co/datasets/{repo_id}")
    return given


def write_hub_folder(
    out: Path,
    infos: list[SplitInfo],
    source: str,
    origin: list[str],
    cache_dir: str | Path | None,
    max_shard_bytes: int,
    progress: bool,
    repo_id: str | None = None,
    **prepare_args,
) -> None:
    """Prepare every split, then write the folder beside ``out`` and rename it into place: Parquet shards,
    then the card (``origin``: its lines on the source, :func:`~.dataset_card.source_lines`)."""
    counts: dict[str, dict[str, np.ndarray]] = {}
    dataset_infos = DatasetInfosDict()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out.parent}: cannot be created ({err.strerror}): expected a writable folder") from None
    caches = {info.name: prepare(info.name, source, cache_dir, progress=progress, **prepare_args) for info in infos}
    tmp = temporary_sibling(out)
    try:
        for info in infos:
            cache = caches[info.name]
            names = dataset_class_names(cache)  # the split's, or the source's own (an MNIST-format classes.txt)
            features = Features({"image": Image(), "label": ClassLabel(names=names)})
            splits, counts[info.name], download_size = {}, {}, 0
            for part in PARTS:
                images, labels = load_split(cache, part)
                dataset = _image_dataset(images[:, 0].numpy(), labels.numpy(), features, f"{info.name}-{part}",
                                         progress)
                shards = dataset.data.nbytes // max_shard_bytes + 1
                for index in range(shards):
                    path = tmp / shard_path(info.name, part, index, shards)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with quiet_datasets():
                        dataset.shard(shards, index, contiguous=True).to_parquet(str(path))
                    download_size += path.stat().st_size
                splits[part] = datasets.SplitInfo(part, num_bytes=dataset.data.nbytes, num_examples=len(dataset))
                counts[info.name][part] = np.bincount(labels.numpy(), minlength=len(names))
                say(progress, f"{info.name} {part}: {len(dataset)} images in {shards} Parquet shard(s)")
            dataset_infos[info.name] = DatasetInfo(
                features=features, splits=datasets.SplitDict(splits), download_size=download_size,
                dataset_size=sum(s.num_bytes for s in splits.values()),
            )
        card = dataset_card(infos, source, dataset_infos, counts, repo_id, origin)
        (tmp / CARD_FILE).write_text(str(card))
        fsync_tree(tmp)
        _move_into_place(tmp, out)
    except OSError as err:
        raise write_error(out, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(progress, f"wrote {out}")


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` onto ``out``, which must still be missing or an empty folder.

    The rename itself is the check (POSIX renames a folder only onto a missing or empty folder), so a
    file that appeared in ``out`` while publish ran is never replaced or deleted; the finished folder is
    then kept beside ``out`` under a free name, which the refusal gives.
    """
    try:
        os.rename(tmp, out)
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        kept = next(out.with_name(f"{out.name}.published-{n}") for n in range(1, 10**6)
                    if not out.with_name(f"{out.name}.published-{n}").exists())
        os.rename(tmp, kept)
        held = "files" if out.is_dir() else "a file"
        raise UserError(f"--out {out}: {held} appeared in it while publish ran: kept them untouched; the published "
                        f"folder is {kept}: expected --out to stay empty until publish ends") from None
    fsync_tree(out.parent, recursive=False)


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (``kill``, a job scheduler) ends the process as Ctrl-C does, through every ``finally`` (the
    temporary folder is removed), with exit status 143. Only the main thread can set a handler; elsewhere the
    process's own handling stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _image_dataset(images: np.ndarray, labels: np.ndarray, features: Features, name: str, progress: bool) -> Dataset:
    """Upright ``(N, 28, 28)`` uint8 glyphs -> a Dataset of PNG-encoded images and labels."""
    blobs = []
    for glyph in tqdm(images, desc=f"PNG {name}", unit="img", disable=not progress, leave=False):
        buffer = io.BytesIO()
        PILImage.fromarray(glyph).save(buffer, format="PNG")  # 8-bit greyscale: lossless
        blobs.append(buffer.getvalue())
    image_column = pa.StructArray.from_arrays(
        [pa.array(blobs, pa.binary()), pa.nulls(len(blobs), pa.string())], names=["bytes", "path"]
    )
    table = pa.table({"image": image_column, "label": pa.array(labels, pa.int64())})
    # datasets' table class with a fingerprint given, as the cache writer does (from_dict would pickle it all).
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features), fingerprint=f"publish-{name}")


def _already_published(given: Path, out: Path, names: list[str], origin: list[str]) -> bool:
    """True when ``out`` is a folder written by ``publish`` for exactly ``names`` from the source that ``origin``
    describes; False when it is new or empty (``given``: ``--out`` as the user wrote it, for messages).

    Raises:
        UserError: ``out`` holds anything else, splits published from another source (publish never
            overwrites what it did not write, nor one copy with another), or a published folder with files
            publish did not write beside its own (re-used, they would be uploaded with it).
    """
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    configs = published_configs(out) if out.is_dir() else None
    if configs is None or sorted(configs) != sorted(names):
        if configs is not None:
            held = f"a published dataset of {', '.join(sorted(configs))}"
        elif out.is_dir():  # name one of the user's files, so they know what is in the way
            held = f"other files ({sorted(p.name for p in out.iterdir())[0]}, ...)"
        else:
            held = "a file, not a folder"
        raise UserError(f"--out {given}: exists and holds {held}: expected a new or empty folder, or one that "
                        f"publish wrote for {', '.join(names)}")
    published = card_source_lines((out / CARD_FILE).read_text(encoding="utf-8"))
    if published != origin:
        was = next((line for line in _facts(published) if line not in origin), "nothing")
        now = next((line for line in _facts(origin) if line not in published), "nothing")
        raise UserError(f"--out {given}: holds {', '.join(names)} published from another source (its card: "
                        f"{was.lstrip('- ')}; this source: {now.lstrip('- ')}): expected the same source, or a "
                        "new or empty folder")
    written = {out / CARD_FILE, *(file for config in configs.values() for entry in config.get("data_files") or []
                                  if isinstance(entry, dict) for file in out.glob(str(entry.get("path", ""))))}
    foreign = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if (p.is_file() or p.is_symlink()) and p not in written)
    if foreign:  # kept as it is, it would be re-used (and uploaded) with them
        raise UserError(f"--out {given}: holds the published {', '.join(names)} and files publish did not write "
                        f"({', '.join(foreign[:3])}): expected only its card and Parquet files (move the others out)")
    return True


def _facts(lines: list[str]) -> list[str]:
    """Source lines without blanks and headings: the ones a difference is named by."""
    return [line for line in lines if line and not line.endswith(":")]


def _check_hub_access(repo_id: str) -> None:
    """Fail in one line, before any work, when the Hub cannot be written: a bad id, no token, no network."""
    from huggingface_hub import HfApi, get_token

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UserError(f"--repo-id {repo_id!r}: expected OWNER/NAME")
    if get_token() is None:
        raise UserError(f"--repo-id {repo_id}: no Hugging Face token: expected `hf auth login` or HF_TOKEN set "
                        "(without --repo-id the folder is written only)")
    _hub_call(repo_id, "the Hub cannot be reached or refused the token", lambda: HfApi().whoami())


def upload(folder: Path, repo_id: str, private: bool) -> None:
    """Create the dataset repository if needed and upload ``folder`` (re-running resumes an interrupted upload)."""
    from huggingface_hub import HfApi

    api = HfApi()
    _hub_call(repo_id, f"upload failed ({folder} is complete: run the same command again to resume)", lambda: (
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset",
                          commit_message="EMNIST as Parquet (emnist_dist publish)"),
    ))


def _hub_call(repo_id: str, what: str, call) -> None:
    """Run a Hub request; its network and HTTP errors become one line."""
    import httpx2  # huggingface_hub's HTTP client: transport errors reach the caller unwrapped; HfHubHTTPError derives from it

    try:
        call()
    except (httpx2.HTTPError, OSError) as err:  # OSError: OfflineModeIsEnabled (HF_HUB_OFFLINE=1)
        raise UserError(f"--repo-id {repo_id}: {what}: {type(err).__name__}: {one_line(err, 160)}") from None

