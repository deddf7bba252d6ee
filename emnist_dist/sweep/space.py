"""A W&B sweep file read as an Optuna search space: :func:`read_space` -> :class:`SearchSpace`.

The same file serves ``wandb sweep`` and ``python -m emnist_dist.sweep``. Understood keys:

- ``method``: ``bayes`` (Optuna's TPE), ``random`` or ``grid``.
- ``metric``: ``name`` (a key of a validation record in ``metrics.jsonl``: ``val/acc``, ``val_ema/acc``,
  ``val/macro_f1``, ...; never a test metric) and ``goal`` (``maximize`` / ``minimize``).
- ``parameters``: config keys (``train.lr``) mapped to ``value`` (a constant), ``values`` (a list; W&B's
  ``probabilities`` is refused) or ``distribution`` with ``min``/``max``: ``uniform``, ``int_uniform``,
  ``log_uniform_values``, ``log_uniform`` (bounds are natural logarithms), ``q_uniform`` (step ``q``,
  default 1), ``categorical``, ``constant``. A ``min``/``max`` without ``distribution`` is ``int_uniform``
  for two integers and ``uniform`` otherwise, as in W&B. Distributions Optuna cannot draw (normal,
  log-normal, a quantised log scale) are refused.
- ``early_terminate``: ``type: hyperband`` with ``min_iter`` (in epochs: a trial reports at each
  validation) or ``max_iter`` and ``s``, and ``eta`` (default 3): Optuna's ``HyperbandPruner``.
- ``program``, ``command``, ``project``, ``entity``, ``name``, ``description``, ``run_cap``: W&B's own,
  ignored here.

Anything else, a key that is not a config field, or a value the config refuses is a one-line
:class:`~emnist_dist.errors.UserError` before any trial starts (:func:`check_values`).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import optuna
import yaml

from ..config import Config, config_to_dict, flatten_config, parse_config
from ..errors import UserError, one_line

WANDB_ONLY_KEYS = {"program", "command", "project", "entity", "name", "description", "run_cap"}
METHODS = {"bayes", "random", "grid"}
GOALS = {"maximize", "minimize"}
SCALARS = (bool, int, float, str, type(None))
DISTRIBUTIONS = ("constant", "categorical", "uniform", "int_uniform", "log_uniform_values", "log_uniform", "q_uniform")


@dataclass(frozen=True)
class Parameter:
    """One searched config key: ``kind`` is ``categorical`` (``choices``), ``float`` or ``int`` (``low``..``high``,
    ``log`` scale, optional ``step``)."""

    key: str
    kind: str
    choices: tuple = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial):
        """Draw this parameter's value for ``trial`` (a trial that already holds it gets it back unchanged)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1))
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def grid_values(self) -> list:
        """Every value of this parameter, for the grid method; a continuous range has none."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is not None:
            count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            return [self.low + i * self.step for i in range(count)]
        raise UserError(f"parameters.{self.key}: a continuous range has no grid: expected values, int_uniform or "
                        "q_uniform with method: grid")

    def candidates(self) -> list:
        """The values worth checking against the config: every choice, or both bounds."""
        if self.kind == "categorical":
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]


@dataclass(frozen=True)
class SearchSpace:
    """What a sweep file asks for, in Optuna's terms."""

    method: str
    metric: str
    goal: str
    parameters: tuple[Parameter, ...]
    hyperband: dict | None = None
    """``min_resource``, ``max_resource`` (None: the base config's epochs), ``reduction_factor``."""
    source: dict = field(default_factory=dict, compare=False)
    """The file's own mapping (W&B keys included), as read."""

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.parameters]

    def definition(self) -> dict:
        """What identifies the space (the study refuses a sweep file that changes it)."""
        return {"method": self.method, "metric": self.metric, "goal": self.goal,
                "parameters": {p.key: [p.kind, list(p.choices), p.low, p.high, p.log, p.step] for p in self.parameters},
                "hyperband": self.hyperband}

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """TPE (``constant_liar``: parallel workers see each other's running trials), random, or grid."""
        if self.method == "grid":
            return optuna.samplers.GridSampler({p.key: p.grid_values() for p in self.parameters}, seed=seed)
        if self.method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    def make_pruner(self, epochs: int) -> optuna.pruners.BasePruner:
        """Hyperband over epochs (``epochs``: the base config's, unless the file gave ``max_iter``), or none."""
        if self.hyperband is None:
            return optuna.pruners.NopPruner()
        hb = self.hyperband
        return optuna.pruners.HyperbandPruner(min_resource=hb["min_resource"],
                                              max_resource=hb["max_resource"] or max(epochs, hb["min_resource"]),
                                              reduction_factor=hb["reduction_factor"])

    def grid_size(self) -> int | None:
        """How many points the grid has (None for the other methods)."""
        if self.method != "grid":
            return None
        return math.prod(len(p.grid_values()) for p in self.parameters)

    def grid_point(self, index: int) -> dict:
        """The grid's ``index``-th point, ``{key: value}``, in the file's order (the last key varies fastest)."""
        point = {}
        for p in reversed(self.parameters):
            values = p.grid_values()
            index, position = divmod(index, len(values))
            point[p.key] = values[position]
        return dict(reversed(point.items()))


def read_space(path: str | Path) -> SearchSpace:
    """Read and check a W&B sweep file (keys only; :func:`check_values` checks them against the config)."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"--space {path}: cannot be read ({one_line(err)}): expected a W&B sweep YAML file") from None
    except yaml.YAMLError as err:
        raise UserError(f"--space {path}: not valid YAML ({one_line(err)})") from None
    if not isinstance(spec, dict):
        raise UserError(f"--space {path}: expected a mapping with method, metric and parameters")
    return parse_space(spec, where=f"--space {path}")


def parse_space(spec: dict, where: str = "sweep file") -> SearchSpace:
    """A sweep definition (the YAML file's mapping) as a :class:`SearchSpace`."""
    unknown = set(spec) - WANDB_ONLY_KEYS - {"method", "metric", "parameters", "early_terminate"}
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r}: expected method, metric, parameters, "
                        f"early_terminate (or W&B's {', '.join(sorted(WANDB_ONLY_KEYS))})")
    method = spec.get("method")
    if method not in METHODS:
        raise UserError(f"{where}: method={method!r}: expected bayes, random or grid")
    metric = spec.get("metric")
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        raise UserError(f"{where}: metric: expected a mapping with name (e.g. val/acc) and goal")
    name, goal = metric["name"], metric.get("goal", "minimize")  # W&B's default goal
    if not name.startswith(("val/", "val_ema/", "train/")):
        raise UserError(f"{where}: metric.name={name}: expected a validation metric of metrics.jsonl such as "
                        "val/acc or val_ema/acc (the test split never chooses)")
    if goal not in GOALS:
        raise UserError(f"{where}: metric.goal={goal!r}: expected maximize or minimize")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise UserError(f"{where}: parameters: expected a mapping of config keys (e.g. train.lr) to their values")
    parsed = tuple(parse_parameter(key, value, where) for key, value in parameters.items())
    space = SearchSpace(method, name, goal, parsed, parse_early_terminate(spec.get("early_terminate"), where), spec)
    if method == "grid":
        space.grid_size()  # refuses a continuous range now
    return space


def parse_parameter(key: str, spec, where: str) -> Parameter:
    """One entry of ``parameters``."""
    here = f"{where}: parameters.{key}"
    if not isinstance(spec, dict):
        raise UserError(f"{here}: expected a mapping with value, values, or distribution with min and max")
    if "parameters" in spec:
        raise UserError(f"{here}: nested parameters: expected dotted config keys such as train.lr")
    if "probabilities" in spec:
        raise UserError(f"{here}: probabilities: not supported (Optuna draws values uniformly): expected values alone")
    distribution = spec.get("distribution")
    if distribution is None:
        if "value" in spec:
            distribution = "constant"
        elif "values" in spec:
            distribution = "categorical"
        elif "min" in spec and "max" in spec:
            integers = all(isinstance(spec[b], int) and not isinstance(spec[b], bool) for b in ("min", "max"))
            distribution = "int_uniform" if integers else "uniform"
        else:
            raise UserError(f"{here}: expected value, values, or min and max (with a distribution)")
    if distribution not in DISTRIBUTIONS:
        raise UserError(f"{here}: distribution={distribution!r}: expected {', '.join(DISTRIBUTIONS)} (Optuna draws "
                        "no normal or quantised-log values)")
    if distribution == "constant":
        return _categorical(key, [spec.get("value")], here)
    if distribution == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise UserError(f"{here}: values: expected a non-empty list")
        return _categorical(key, values, here)
    low, high = _bounds(spec, here)
    if distribution == "uniform":
        return Parameter(key, "float", low=low, high=high)
    if distribution == "int_uniform":
        if low != int(low) or high != int(high):
            raise UserError(f"{here}: int_uniform: expected integer min and max")
        return Parameter(key, "int", low=int(low), high=int(high))
    if distribution == "log_uniform_values":
        if low <= 0:
            raise UserError(f"{here}: log_uniform_values: min={low}: expected a positive min")
        return Parameter(key, "float", low=low, high=high, log=True)
    if distribution == "log_uniform":  # W&B: min/max are natural logarithms of the bounds
        return Parameter(key, "float", low=math.exp(low), high=math.exp(high), log=True)
    q = spec.get("q", 1)  # q_uniform
    if not isinstance(q, (int, float)) or isinstance(q, bool) or q <= 0:
        raise UserError(f"{here}: q={q!r}: expected a positive step")
    if isinstance(q, int) and low == int(low) and high == int(high):
        return Parameter(key, "int", low=int(low), high=int(high), step=q)
    return Parameter(key, "float", low=low, high=high, step=float(q))


def _categorical(key: str, values: list, here: str) -> Parameter:
    bad = [v for v in values if not isinstance(v, SCALARS)]
    if bad:
        raise UserError(f"{here}: value {bad[0]!r}: expected numbers, strings, booleans or null (Optuna's choices)")
    return Parameter(key, "categorical", choices=tuple(values))


def _bounds(spec: dict, here: str) -> tuple[float, float]:
    low, high = spec.get("min"), spec.get("max")
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (low, high)):
        raise UserError(f"{here}: min={low!r} max={high!r}: expected two numbers")
    if not low < high:
        raise UserError(f"{here}: min={low} max={high}: expected min < max")
    return float(low), float(high)


def parse_early_terminate(spec, where: str) -> dict | None:
    """``early_terminate`` as HyperbandPruner's arguments, or None."""
    if spec is None:
        return None
    here = f"{where}: early_terminate"
    if not isinstance(spec, dict) or spec.get("type") != "hyperband":
        raise UserError(f"{here}: expected type: hyperband (with min_iter in epochs)")
    eta = spec.get("eta", 3)
    if not isinstance(eta, int) or eta < 2:
        raise UserError(f"{here}: eta={eta!r}: expected an integer >= 2")
    min_iter, max_iter = spec.get("min_iter"), spec.get("max_iter")
    for name, value in (("min_iter", min_iter), ("max_iter", max_iter)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UserError(f"{here}: {name}={value!r}: expected a positive number of epochs")
    if min_iter is None:
        if max_iter is None:
            raise UserError(f"{here}: expected min_iter (or max_iter and s), in epochs")
        brackets = spec.get("s", 0)
        min_iter = max(1, round(max_iter / eta ** brackets))
    return {"min_resource": min_iter, "max_resource": max_iter, "reduction_factor": eta}


def override_args(values: dict) -> list[str]:
    """Command-line overrides for parameter values: ``--train.lr=0.001`` (how W&B's agent passes them)."""
    return [f"--{key}={'null' if value is None else value}" for key, value in values.items()]


def check_values(space: SearchSpace, base_args: list[str],
                 parse: Callable[[list[str]], Config] = parse_config) -> Config:
    """Refuse, in one line, a parameter that is not a config key or a value the config refuses; returns the
    base config. The values are checked a few at a time (one parse per row of candidates); a refused row
    is parsed again key by key to name the culprit."""
    base = parse(base_args)
    fields = flatten_config(config_to_dict(base))
    for key in space.keys:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"parameters.{key}: not a config key{hint}: expected one of the keys "
                            "python -m emnist_dist.train --help lists, such as train.lr")
        if key in ("output_dir", "resume"):
            raise UserError(f"parameters.{key}: set by the sweep for each trial: expected another config key")
    columns = [p.candidates() for p in space.parameters]
    for row in range(max(len(c) for c in columns)):
        values = {p.key: column[row % len(column)] for p, column in zip(space.parameters, columns)}
        try:
            parse([*base_args, *override_args(values)])
        except UserError:
            for key, value in values.items():
                try:
                    parse([*base_args, *override_args({key: value})])
                except UserError as err:
                    raise UserError(f"parameters.{key}: value {value!r} refused: {err}") from None
            raise
    return base

