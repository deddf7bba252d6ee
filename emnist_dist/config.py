"""The one typed configuration tree, parsed by jsonargparse.

Precedence: dataclass defaults < ``--config FILE`` (YAML) < ``--section.key VALUE`` flags.
``--help`` lists every field with its default. The resolved tree is what a run saves as
``output_dir/config.yaml``; loading that file back reproduces the run's configuration.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

from .config_rules import validate
from .data.splits import SPLITS
from .errors import UserError, one_line
from .files import write_text_atomic

# The allowed values of the choice fields, defined once: the components that act on them
# (data.splits, train.optim, train.loss) check against these same lists.
Split = Literal[tuple(SPLITS)]
OptimizerName = Literal["lion", "adamw", "sgd"]
ClassWeighting = Literal["none", "inverse", "minmax", "effective_number"]


@dataclass
class DataConfig:
    """Where the EMNIST split comes from and how it is shaped for the model."""

    split: Split = "byclass"
    """EMNIST split to train on."""
    source: str = "synthetic"
    """nist (official download) | a local path | hf:OWNER/NAME | synthetic (offline stand-in, NOT EMNIST)."""
    cache_dir: Optional[str] = None
    """Prepared-dataset cache; default $EMNIST_DIST_CACHE or ~/.cache/emnist_dist."""
    mirrors: list[str] = field(default_factory=list)
    """source=nist: URLs of copies of the NIST gzip.zip, tried in order after the official server (then those in
    $EMNIST_DIST_NIST_MIRRORS); each must have the official md5."""
    image_size: int = 112
    """Side length the 28x28 glyphs are resized to (bilinear) on the device."""
    val_fraction: float = 0.1
    """Stratified, seeded share of the training split held out for validation."""
    synthetic_train_per_class: int = 300
    """Training glyphs per class for source=synthetic."""
    synthetic_test_per_class: int = 50
    """Test glyphs per class for source=synthetic."""
    subset: Optional[int] = None
    """Keep only this many training samples (stratified); for debugging."""
    exclude: Optional[str] = None
    """File of training-part row indices, one per line (the audit's exclude.txt): those glyphs leave the
    training and validation parts; test data are never touched."""
    fold: Optional[int] = None
    """Hold out part number `fold` (0..folds-1) of a stratified K-fold partition of the training part:
    neither trained nor validated on (the audit scores it). None = no fold held out."""
    folds: int = 4
    """K of the partition data.fold selects from; the audit trains one model per part (K models)."""


@dataclass
class AugmentConfig:
    """On-device augmentation: mild random affine, then MixUp/CutMix soft targets."""

    degrees: float = 0.0
    """Max rotation in degrees (0 = off). No flips: characters are not mirror-symmetric."""
    translate: float = 0.0
    """Max translation as a fraction of the image side."""
    scale: float = 0.0
    """Scale is drawn from [1 - scale, 1 + scale]."""
    shear: float = 0.0
    """Max shear in degrees."""
    mixup_alpha: float = 0.22
    """MixUp Beta(alpha, alpha) parameter (0 = no MixUp)."""
    cutmix_alpha: float = 0.62
    """CutMix Beta(alpha, alpha) parameter (0 = no CutMix)."""
    mix_prob: float = 0.8
    """Probability that a batch is mixed at all."""
    switch_prob: float = 0.5
    """Probability of CutMix instead of MixUp when both alphas are > 0."""
    label_smoothing: float = 0.1
    """Label smoothing of the soft targets (mixed or not)."""
    mixup_off_epoch: Optional[int] = None
    """Epoch from which MixUp/CutMix is switched off (None = never)."""


@dataclass
class ModelConfig:
    """Which timm network and how it is initialised."""

    name: str = "efficientnet_b3"
    """Any timm model name; built with in_chans=1 and the split's class count."""
    pretrained: Union[bool, str] = False
    """false | true (Hugging Face Hub) | path to a local weights file (.safetensors/.pth)."""
    drop_rate: float = 0.3
    """Dropout before the classifier."""
    drop_path_rate: float = 0.2
    """Stochastic depth (for models that support it)."""
    channels_last: bool = True
    """channels_last memory format for the model and its input batches (GPU and CPU alike)."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    ema: bool = False
    """Keep an exponential moving average of the weights (timm's, with warmup); raw and EMA weights are both
    evaluated, the better by validation is exported."""
    ema_decay: float = 0.9998
    """EMA decay per optimizer step."""


@dataclass
class TrainConfig:
    """Optimisation: batch, optimizer, schedule, precision, evaluation cadence."""

    epochs: int = 30
    """Training epochs (passes over the training part of the split)."""
    batch_size: int = 256
    """Global batch per step, summed over all processes (each takes batch_size / world_size)."""
    eval_batch_size: int = 1024
    """Evaluation batch, summed over all processes."""
    lr: float = 1e-4
    """Peak learning rate (Lion wants 3-10x less than AdamW)."""
    weight_decay: float = 0.1
    """Decoupled weight decay; never applied to biases or normalisation weights."""
    optimizer: OptimizerName = "lion"
    """lion (the recipe), adamw or sgd (Nesterov), to repeat the reference's comparison."""
    momentum: float = 0.9
    """SGD (Nesterov) momentum."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Lion / AdamW betas."""
    warmup_epochs: float = 5.0
    """Linear warmup length in epochs (stepped per optimizer step)."""
    T_0: float = 10.0
    """First cosine cycle length in epochs (CosineAnnealingWarmRestarts)."""
    T_mult: int = 1
    """Each cosine cycle is T_mult times longer than the previous one."""
    eta_min: float = 1e-6
    """Learning rate at the bottom of each cosine cycle."""
    class_weighting: ClassWeighting = "minmax"
    """Class weights of the KL loss; minmax = inverse frequency scaled to [1, 2] (the recipe)."""
    effective_number_beta: float = 0.9999
    """beta of the effective_number class weighting (Cui et al. 2019)."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step (effective batch = batch_size x this)."""
    clip_grad_norm: Optional[float] = 1.0
    """Clip the global gradient norm to this value (None = off)."""
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    """auto = bf16 on a CUDA device that supports it, else full precision."""
    eval_every: int = 1
    """Evaluate on the validation split every N epochs (and always after the last)."""
    max_steps: Optional[int] = None
    """Stop after this many optimizer steps (debugging)."""


@dataclass
class CheckpointConfig:
    """Resumable state under output_dir/checkpoints/."""

    every_steps: Optional[int] = None
    """Also checkpoint every N optimizer steps (None = only at epoch ends)."""
    keep_last: int = 2
    """How many of the latest checkpoints to keep (the best-by-validation is kept besides)."""


@dataclass
class LogConfig:
    """Trackers, console progress and logging cadence."""

    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Any tracker Accelerate supports: wandb, tensorboard, mlflow, comet_ml, aim, clearml, dvclive, swanlab,
    trackio (empty = none). Each needs its package installed."""
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    """auto = online when an API key for the W&B server ($WANDB_BASE_URL, default api.wandb.ai) is configured
    ($WANDB_API_KEY or its netrc entry), else offline."""
    project: str = "emnist_dist"
    """Tracker project name."""
    run_name: Optional[str] = None
    """Tracker run name (default: the output_dir folder name)."""
    log_every: int = 50
    """Log training loss / lr / throughput every N optimizer steps."""
    progress: bool = True
    """Show a progress bar on an interactive terminal (main process only); otherwise plain log lines."""


@dataclass
class AuditConfig:
    """Data-quality audit (python -m emnist_dist.audit): out-of-fold probabilities from data.folds models, then
    the ranking. None of these settings changes a fold's training."""

    rank_only: bool = False
    """Recompute the ranking from output_dir/oof_probs.safetensors without training."""
    filter_by: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                       "predicted_neq_given", "low_normalized_margin", "low_self_confidence"] = "prune_by_noise_rate"
    """cleanlab.filter.find_label_issues(filter_by=...): how label issues are chosen."""
    score_method: Literal["self_confidence", "normalized_margin", "confidence_weighted_entropy"] = "self_confidence"
    """cleanlab.rank.get_label_quality_scores(method=...): the score column (lower = more suspicious)."""
    transform_ratio: float = 5.0
    """Flag a rotation/flip when it makes the glyph's own label at least this many times more probable."""
    transform_min_prob: float = 0.1
    """... and the transformed glyph's label probability is at least this."""
    sheet_size: int = 64
    """Glyphs on label_issues.png, most suspicious first."""
    top: int | None = None
    """label_issues.csv (and exclude.txt) hold the first TOP glyphs of the complete ranking (scores.csv)
    instead of only the flagged ones: trade precision for recall."""


@dataclass
class Config:
    """A complete training run (and the audit's settings)."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    output_dir: str = "runs/default"
    """Run folder: config.yaml, metrics.jsonl, final.json, checkpoints/, model/. $VARS are expanded
    (e.g. runs/sweep/$WANDB_RUN_ID)."""
    seed: int = 0
    """Seeds initial weights, the epoch permutations, augmentation and the validation carve-out."""
    cpu: bool = False
    """Force the CPU even when a GPU is present (also for multi-process CPU DDP)."""
    resume: str = "auto"
    """never | auto (latest complete checkpoint in output_dir) | PATH to a checkpoint."""
    debug: bool = False
    """Debug mode: a small subset, a few steps, anomaly checks and synchronous CUDA."""


TRAIN_DESCRIPTION = "Train an EMNIST classifier."


class ConfigFileAction(ActionConfigFile):
    """``--config FILE``: the file is read here and its text handed to jsonargparse. Given a path, jsonargparse
    changes the process's working directory into the file's folder while it parses (to resolve relative path
    types, which this tree has none of): every other thread's relative paths then move, and a concurrent
    ``parse_config`` resolves ``configs/x.yaml`` against ``configs/``. Reading the file first keeps the
    process as it is; a file that is not a YAML mapping is refused in one line naming it."""

    def __call__(self, parser, cfg, values, option_string=None):
        path = Path(values)
        if path.exists():
            values = _config_file_text(path)
        self.apply_config(parser, cfg, self.dest, values)


MAX_CONFIG_BYTES = 1 << 20
"""A settings file is a few kilobytes; reading stops past this (``/dev/zero`` would otherwise fill the memory)."""


def _config_file_text(path: Path) -> str:
    """The text of a ``--config`` file, once it is known to be a YAML mapping."""
    if not path.is_dir() and not path.is_file():  # a FIFO or a device: reading would block or never end
        raise UserError(f"--config {path}: not a regular file: expected a YAML file of settings")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise UserError(f"--config {path}: larger than {MAX_CONFIG_BYTES >> 20} MiB: expected a YAML file of settings")
        text = data.decode("utf-8")
        # Anchors and aliases let a few bytes stand for an exponentially large tree ("billion laughs").
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise UserError(f"--config {path}: uses YAML aliases (*name): expected plain settings, each value written out")
        settings = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else one_line(err, 160)
        raise UserError(f"--config {path}: cannot be read ({reason}): expected a YAML file of settings") from None
    if not isinstance(settings, dict):
        raise UserError(f"--config {path}: holds {type(settings).__name__ if settings is not None else 'nothing'}: "
                        "expected a YAML mapping of settings (section: {key: value})")
    return text


def build_parser(prog: str = "python -m emnist_dist.train", description: str = TRAIN_DESCRIPTION,
                 defaults: dict | None = None) -> ArgumentParser:
    """The command-line parser: ``--config FILE`` then ``--section.key VALUE`` overrides.

    ``defaults`` (``{"model.name": ...}``) replaces dataclass defaults for another entry point (the audit).
    """
    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docstrings become --help text
    parser = ArgumentParser(
        prog=prog,
        description=f"{description} Every field below can be set in the YAML "
        "given to --config and overridden on the command line.",
        exit_on_error=False,
        env_prefix="EMNIST_DIST",
        default_env=False,
    )
    parser.add_argument("--config", action=ConfigFileAction, help="YAML file with any of the fields below.")
    parser.add_class_arguments(Config, as_group=False)
    if defaults:
        parser.set_defaults(defaults)
    return parser


def parse_config(argv: list[str] | None = None, prog: str = "python -m emnist_dist.train",
                 description: str = TRAIN_DESCRIPTION, defaults: dict | None = None) -> Config:
    """Parse argv into a :class:`Config`; a bad key, type or value raises :class:`UserError`."""
    parser = build_parser(prog, description, defaults)
    args = _section_files_read(sys.argv[1:] if argv is None else list(argv))
    if any(a in ("-h", "--help") for a in args):
        parser.print_help()
        raise SystemExit(0)
    printing = [a for a in args if a.split("=", 1)[0] == "--print_config"]
    if printing:  # jsonargparse prints the tree and exits inside parse_args: first check it as a run would
        parse_config([a for a in args if a not in printing], prog, description, defaults)
    try:
        namespace = parser.parse_args(args)  # exit_on_error=False: errors are raised, nothing is printed
    except SystemExit as err:
        if err.code in (0, None):  # --print_config printed the tree (to stdout): a clean exit
            raise
        raise UserError(_first_informative_line(str(err))) from None
    except UserError:
        raise
    except Exception as err:  # jsonargparse raises ArgumentError
        raise UserError(_first_informative_line(str(err))) from None
    namespace.pop("config", None)
    return _checked(parser, namespace)


def check_config(config: Config) -> Config:
    """``config`` (built in code) checked with the command line's rules: the same type checks and conversions
    (``"3"`` -> 3), the same :func:`validate`, the same one-line errors. Returns the checked copy.

    Raises:
        UserError: naming the first bad field and what was expected.
    """
    if not isinstance(config, Config):
        raise UserError(f"config is a {type(config).__name__}: expected an emnist_dist.config.Config "
                        "(parse_config([...]) or Config(...))")
    for f in dataclasses.fields(Config):
        section = getattr(config, f.name)
        if dataclasses.is_dataclass(f.default_factory) and not isinstance(section, f.default_factory):
            raise UserError(f"config.{f.name} is a {type(section).__name__}: expected a {f.default_factory.__name__}")
    _refuse_unknown(config)
    _refuse_nulls(config)
    parser = build_parser()
    try:
        namespace = parser.parse_object(_yaml_safe(config_to_dict(config)))
    except Exception as err:  # jsonargparse raises ArgumentError (bad type, unknown key)
        raise UserError(_first_informative_line(str(err))) from None
    return _checked(parser, namespace)


def _refuse_unknown(settings, prefix: str = "") -> None:
    """An attribute set in code that is no setting (``cfg.train.epoch = 5`` for ``epochs``): the command line
    refuses such a key, so does this."""
    fields = {f.name: f for f in dataclasses.fields(settings)}
    for name, value in vars(settings).items():
        if name not in fields:
            raise UserError(f"config.{prefix}{name}: not a setting: expected one of {', '.join(fields)}")
        if dataclasses.is_dataclass(value):
            _refuse_unknown(value, f"{prefix}{name}.")


def _refuse_nulls(settings, prefix: str = "") -> None:
    """None where a field's type has no None (jsonargparse's ``parse_object`` lets it through unchecked)."""
    types = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            _refuse_nulls(value, f"{prefix}{f.name}.")
        elif value is None and type(None) not in typing.get_args(types[f.name]):
            raise UserError(f"{prefix}{f.name}=None: expected a value (this setting cannot be null)")


def _checked(parser: ArgumentParser, namespace) -> Config:
    """The Config of a parsed namespace, ``$VARS`` in output_dir expanded, after :func:`validate`."""
    tree = parser.instantiate(namespace)
    config = Config(**{f.name: tree[f.name] for f in dataclasses.fields(Config)})
    config.output_dir = os.path.expandvars(config.output_dir)
    validate(config)
    return config


def _section_files_read(args: list[str]) -> list[str]:
    """``--train FILE`` (one section from a file, which jsonargparse also accepts) with the file's text in its
    place, for the reason :class:`ConfigFileAction` gives."""
    sections = {f"--{f.name}" for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.default_factory)}
    out = []
    for index, arg in enumerate(args):
        option, equals, value = arg.partition("=")
        if equals and option in sections and Path(value).exists():
            arg = f"{option}={_config_file_text(Path(value))}"
        elif index and args[index - 1] in sections and Path(arg).exists():
            arg = _config_file_text(Path(arg))
        out.append(arg)
    return out


def _first_informative_line(message: str) -> str:
    """jsonargparse errors span lines (usage, nested causes); keep the informative first line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("usage:")]
    text = lines[0] if lines else "invalid arguments"
    if len(lines) > 1 and text.endswith(":"):
        text = f"{text} {lines[1]}"
    return one_line(text)


def config_to_dict(config: Config) -> dict:
    """The whole tree as nested plain dicts (``dataclasses.asdict``)."""
    return dataclasses.asdict(config)


def flatten_config(tree: dict, prefix: str = "") -> dict:
    """``{"train": {"lr": 1e-4}}`` -> ``{"train.lr": 1e-4}`` (a nested dict, e.g. :func:`config_to_dict`'s)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write the resolved tree as YAML (readable back through ``--config``), atomically."""
    write_text_atomic(path, yaml.safe_dump(_yaml_safe(config_to_dict(config)), sort_keys=False))


def _yaml_safe(value):
    if isinstance(value, dict):
        return {k: _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    return value
