"""Every command line the docs and the README show parses: its module answers ``--help`` and lists each flag named.

Commands of emnist_dist and benchmarks modules, pytest and sphinx (``python -m MODULE ...``, also behind
``accelerate launch`` or ``torchrun``) are checked against their own ``--help``, the launchers' flags against the
launcher's, ``sbatch`` options against ``sbatch --help`` and the arguments after a SLURM template against training's
(the templates hand them on); scripts run with ``sbatch`` or ``bash`` must exist. Other programs (the shell's, pip,
wandb, hf) are not ours to check and are listed in OTHER_PROGRAMS; a program in neither place fails the test.
The repository files the pages name exist.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest

from tests.helpers.docs_pages import ROOT, blocks, inline_commands, pages, shell_commands

SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
OUR_MODULES = ("emnist_dist", "benchmarks", "pytest", "sphinx")
PYTHONS = ("python", "python3", ".venv/bin/python")
OTHER_PROGRAMS = {"mkdir", "ln", "printf", "export", "source", "cd", "pip", ".venv/bin/pip", "wandb", "hf",
                  "scontrol", "squeue", "sacct", "scancel", "tail", "srun", "module", "conda", "git", "mutmut"}
OTHER_MODULES = {"venv", "pip"}  # python -m venv / pip: the installer's own commands
# Commands that hand --section.key overrides on to training's configuration, which their own --help leaves out.
PASSES_CONFIG_TO = {"emnist_dist.sweep": "emnist_dist.train"}
# A real sbatch option that sbatch's --help and --usage leave out (man sbatch has it; the SLURM tests run it).
SBATCH_UNLISTED = "--test-only"

def shown_commands() -> list[tuple[str, list[str]]]:
    """(where, tokens) of every command in a shell block or an inline code span, not-run blocks left out."""
    found = []
    for page in pages():
        for block in blocks(page):
            if block.language in SHELL_LANGUAGES and block.not_run is None:
                found += [(block.where(), command) for command in shell_commands(block.text)]
        found += [(f"{page.relative_to(ROOT)} (inline)", command) for command in inline_commands(page)]
    return found


@cache
def module_help(module: str, args: tuple[str, ...] = ()) -> str:
    """What ``python -m MODULE ARGS --help`` prints, run in this process (``runpy``, as ``python -m`` runs it;
    the imports are shared with the other tests); the package logger's handlers, which the commands' console
    set-up changes, are put back afterwards. pytest runs in a process of its own."""
    if module == "pytest":
        result = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, timeout=120)
        return result.stdout if result.returncode == 0 else f"EXIT {result.returncode}: {result.stderr[-300:]}"
    package_logger = logging.getLogger("emnist_dist")
    saved = package_logger.handlers[:], package_logger.level, package_logger.propagate
    argv, text = sys.argv, io.StringIO()
    sys.argv = [module, *args, "--help"]
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    except ImportError as err:  # no such module
        return f"EXIT: {err}"
    finally:
        sys.argv = argv
        package_logger.handlers[:], package_logger.level, package_logger.propagate = saved
    return text.getvalue() if code == 0 else f"EXIT {code}: {text.getvalue()}"


@cache
def launcher_help(program: str) -> str:
    """The help of ``accelerate launch``, ``torchrun`` or ``sbatch``."""
    if program == "accelerate launch":
        from accelerate.commands.launch import launch_command_parser

        argv, sys.argv = sys.argv, ["accelerate", "launch", "--help"]  # its help shows what the command line selects
        try:
            return launch_command_parser().format_help()
        finally:
            sys.argv = argv
    if program == "torchrun":
        from torch.distributed.run import get_args_parser
        return get_args_parser().format_help()
    with tempfile.TemporaryDirectory() as tmp:  # sbatch reads a cluster's configuration before it prints help
        conf = Path(tmp) / "slurm.conf"
        conf.write_text("ClusterName=docs\nSlurmctldHost=localhost\nNodeName=localhost\nPartitionName=p Nodes=localhost\n")
        texts = []
        for option in ("--help", "--usage"):
            result = subprocess.run(["sbatch", option], capture_output=True, text=True, timeout=60,
                                    env={**os.environ, "SLURM_CONF": str(conf)})
            assert result.returncode == 0, f"sbatch {option}: exit {result.returncode}: {result.stderr[-500:]}"
            texts.append(result.stdout)
    return "\n".join(texts + [SBATCH_UNLISTED])


def flags(args: list[str]) -> list[str]:
    """The option names among a command's arguments (``--a.b=1`` -> ``--a.b``, ``[--x`` -> ``--x``)."""
    names = [a.strip("[]").split("=", 1)[0] for a in args]
    return [n for n in names if re.fullmatch(r"--?[A-Za-z][\w.-]*", n)]


def lists_flag(help_text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(flag)}(?![\w.-])", help_text) is not None


def split_module_call(tokens: list[str]) -> tuple[list[str], str | None, list[str]]:
    """``[launcher args...] -m MODULE [args...]`` -> (launcher args, module, module args)."""
    if "-m" not in tokens:
        return tokens, None, []
    at = tokens.index("-m")
    return tokens[:at], tokens[at + 1], tokens[at + 2:]


class Checks:
    """Collects (where, what is wrong) over all commands; the help texts are fetched once, all together."""

    def __init__(self):
        self.problems: list[str] = []
        self.module_calls: list[tuple[str, str, list[str]]] = []  # where, module, args
        self.program_flags: list[tuple[str, str, list[str]]] = []  # where, launcher, flags

    def command(self, where: str, tokens: list[str]) -> None:
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):  # VAR=value prefixes
            tokens = tokens[1:]
        if tokens[:2] == ["/usr/bin/time", "-v"]:
            tokens = tokens[2:]
        program, args = tokens[0], tokens[1:]
        if program in PYTHONS:
            _, module, module_args = split_module_call(args)
            if module is None:
                self.problems.append(f"{where}: {' '.join(tokens)}: expected python -m MODULE")
            elif module.split(".")[0] in OUR_MODULES:
                self.module_calls.append((where, module, module_args))
            elif module not in OTHER_MODULES:
                self.problems.append(f"{where}: python -m {module}: a module this test does not know")
        elif tokens[:2] == ["accelerate", "launch"] or program == "torchrun":
            launcher = "accelerate launch" if program == "accelerate" else "torchrun"
            launcher_args, module, module_args = split_module_call(tokens[len(launcher.split()):])
            self.program_flags.append((where, launcher, flags(launcher_args)))
            if module is not None:
                self.module_calls.append((where, module, module_args))
        elif program == "sbatch":
            scripts = [a for a in args if not a.startswith("-")]
            at = args.index(scripts[0]) if scripts else len(args)
            if shutil.which("sbatch"):
                self.program_flags.append((where, "sbatch", flags(args[:at])))
            if scripts and not (ROOT / scripts[0]).is_file():
                self.problems.append(f"{where}: sbatch {scripts[0]}: no such script")
            elif scripts:  # the templates hand the arguments after the script to training
                self.module_calls.append((where, "emnist_dist.train", args[at + 1:]))
        elif program == "bash":
            scripts = [a for a in args if not a.startswith("-")]
            if scripts and not (ROOT / scripts[0]).is_file():
                self.problems.append(f"{where}: bash {scripts[0]}: no such script")
        elif program not in OTHER_PROGRAMS:
            self.problems.append(f"{where}: {program}: a program this test does not know (add it to OTHER_PROGRAMS "
                                 "when it is not ours to check)")

    def check_flags(self) -> None:
        for where, module, args in self.module_calls:
            text = module_help(module)
            if text.startswith("EXIT"):
                self.problems.append(f"{where}: python -m {module} --help failed: {text[:300]}")
                continue
            subcommands = re.search(r"\{([\w,-]+)\}", text)
            if args and subcommands and args[0] in subcommands[1].split(","):  # its own --help
                text = module_help(module, (args[0],))
            if module in PASSES_CONFIG_TO:
                text += module_help(PASSES_CONFIG_TO[module])
            for flag in flags(args):
                if not lists_flag(text, flag):
                    self.problems.append(f"{where}: python -m {module}: {flag} is not in its --help")
        for where, program, named in self.program_flags:
            text = launcher_help(program)
            for flag in named:
                if not lists_flag(text, flag):
                    self.problems.append(f"{where}: {program}: {flag} is not in its --help")


def test_every_command_shown_parses():
    commands = shown_commands()
    assert len(commands) > 50, "the pages and their blocks were not found"
    checks = Checks()
    for where, tokens in commands:
        checks.command(where, tokens)
    checks.check_flags()
    assert not checks.problems, "\n".join(checks.problems)


@pytest.mark.parametrize("command, problem", [
    ("python -m emnist_dist.train --config configs/quickstart.yaml --train.epoch 3", "--train.epoch is not in"),
    ("python -m emnist_dist.data prepare --split byclass --out x.png", "--out is not in"),  # inspect's, not prepare's
    ("python -m emnist_dist.nonexistent --x 1", "--help failed"),
    ("accelerate launch --num_process 2 -m emnist_dist.train", "--num_process is not in"),
    ("sbatch slurm/no_such.sh", "no such script"),
    ("sbatch slurm/byclass_b3.sh --train.lr_max 1", "--train.lr_max is not in"),
    ("curl https://example.org", "a program this test does not know"),
])
def test_a_wrong_command_is_caught(command, problem):
    checks = Checks()
    for tokens in shell_commands(command):
        checks.command("example", tokens)
    checks.check_flags()
    assert any(problem in p for p in checks.problems), checks.problems


def test_every_repository_file_named_exists():
    named = re.compile(r"(?<![\w/.-])((?:emnist_dist|tests|benchmarks|configs|slurm|accelerate_configs|sweeps)"
                       r"/[\w/.-]+\.(?:py|yaml|sh|md))")
    missing = [f"{page.relative_to(ROOT)}: {path}" for page in pages() for path in named.findall(page.read_text())
               if not (ROOT / path).is_file()]
    assert not missing, "\n".join(missing)
