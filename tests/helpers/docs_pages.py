"""The documentation as the tests read it: the pages in reading order, their fenced code blocks and the
command lines they show.

A block that cannot run here is marked on the line before its opening fence with
``<!-- docs-test: not-run: REASON -->``; :attr:`Block.not_run` holds the reason.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOT_RUN = re.compile(r"^<!-- docs-test: not-run: (?P<reason>\S.*?) -->$")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`]*)$")
# An inline code span that shows a command line (a table cell, a sentence), as opposed to a key or a file name.
INLINE_COMMAND = re.compile(
    r"`((?:[A-Z_]+=\S+ )*(?:/usr/bin/time -v )?(?:python3? -m|accelerate launch|torchrun|sbatch|bash) [^`]+)`")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    end: int  # of the closing fence
    language: str
    text: str
    not_run: str | None  # the reason given by a docs-test marker

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """README.md, then the docs' pages in the order of the contents (docs/index.md's toctrees), then any other."""
    ordered = [ROOT / "README.md", DOCS / "index.md"]
    for index in [DOCS / "index.md", DOCS / "api" / "index.md"]:
        for block in blocks(index):
            if block.language == "{toctree}":
                for entry in block.text.splitlines():
                    if entry.strip() and not entry.startswith(":"):
                        ordered.append(index.parent / f"{entry.strip()}.md")
    ordered += sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts and p not in ordered)
    included = [(page.parent / block.language.split(maxsplit=1)[1]).resolve()  # {include} pages shown in the docs
                for page in ordered for block in blocks(page) if block.language.startswith("{include}")]
    return ordered + included


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (also those indented in a list item)."""
    found, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening or not opening["info"].strip():
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        marker = NOT_RUN.match(lines[i - 1].strip()) if i else None
        body, j = [], i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][indent:])
            j += 1
        found.append(Block(page, i + 1, j + 1, opening["info"].strip(), "\n".join(body) + "\n",
                           marker["reason"] if marker else None))
        i = j + 1
    return found


def shell_commands(block_text: str) -> list[list[str]]:
    """The simple commands of a shell block: continuation lines joined, comments dropped, split at ``&&``,
    ``||``, ``;`` and ``|``; redirections (``> FILE``) removed."""
    commands = []
    for line in block_text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        tokens = list(lexer)
        k = 0
        while k < len(tokens):
            token = tokens[k]
            if token in (";", "&&", "||", "|", "&"):
                commands.append(command)
                command = []
            elif token in (">", ">>", "<"):
                k += 1  # the file name
            else:
                command.append(token)
            k += 1
        commands.append(command)
    return [c for c in commands if c]


def inline_commands(page: Path) -> list[list[str]]:
    """Command lines shown in inline code spans outside the fenced blocks."""
    lines = page.read_text().splitlines()
    for block in blocks(page):  # fenced blocks are read by shell_commands
        lines[block.line - 1:block.end] = [""] * (block.end - block.line + 1)
    text = "\n".join(lines)
    return [shlex.split(match) for match in INLINE_COMMAND.findall(" ".join(text.split()))]
