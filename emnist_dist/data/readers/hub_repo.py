"""A dataset repository on the Hugging Face Hub (source ``hf:OWNER/NAME``), fetched into the Hub cache.

Only the files that can hold the split are fetched; the folder is then read like a local one.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError, one_line
from ..hub_folder import CARD_FILE, published_configs
from ..splits import SplitInfo

_LOCAL_HINT = "pass a local copy instead: --source /path/to/gzip.zip (or a folder of its .gz/IDX files, or parquet)"


def hub_snapshot(repo_id: str, info: SplitInfo) -> Path:
    """Download (or find in the Hub cache) the files of a dataset repo that can hold the split."""
    import huggingface_hub  # imported here: only this source needs it
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        # The card first: a repo written by `publish` is narrowed to the split's own folder.
        folder = Path(huggingface_hub.snapshot_download(repo_id, repo_type="dataset", allow_patterns=[CARD_FILE]))
        ours = published_configs(folder) is not None
        patterns = [CARD_FILE, f"{info.name}/*"] if ours else ["*.parquet", f"*emnist-{info.name}-*", "*gzip.zip"]
        folder = huggingface_hub.snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        cause = err.__cause__
        if isinstance(cause, OfflineModeIsEnabled):
            reason = "offline mode (HF_HUB_OFFLINE) is on and the repo is not in the local Hub cache"
        elif isinstance(err, LocalEntryNotFoundError) and cause is not None:
            reason = (
                f"Hub unreachable ({type(cause).__name__}: {one_line(cause)}) "
                "and the repo is not in the local Hub cache"
            )
        else:
            reason = f"{type(err).__name__}: {one_line(err)}"
        raise UserError(
            f"hf:{repo_id}: could not get the dataset from the Hugging Face Hub ({reason}); {_LOCAL_HINT}"
        ) from None
    return Path(folder)
