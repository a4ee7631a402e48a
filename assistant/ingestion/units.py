"""Splitting a chunk into answer units: sentences, numbered procedures and table rows.

The extractive composer quotes whole units, so a unit must read well on its own: a numbered
list stays together with the sentence that introduces it, and a table row carries its cells.
Sentence boundaries come from ``pysbd``; markdown emphasis is removed.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pysbd

_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
#: A list longer than this (in words) is quoted item by item instead of as one block.
MAX_BLOCK_WORDS = 110


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def clean_markdown(text: str) -> str:
    """Text without markdown emphasis or code ticks."""
    return _EMPHASIS.sub("", text).strip()


def _sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _segmenter().segment(paragraph) if s.strip()]


def _table_row(line: str, header: list[str] | None) -> str:
    cells = [clean_markdown(c) for c in line.strip().strip("|").split("|")]
    return " - ".join(c for c in cells if c)


def split_units(text: str) -> list[str]:
    """The answer units of a chunk, in reading order."""
    units: list[str] = []
    lines = text.splitlines()
    i = 0
    header: list[str] | None = None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("|"):
            if i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
                header = [c.strip() for c in stripped.strip("|").split("|")]
                i += 2
                continue
            units.append(_table_row(stripped, header))
            i += 1
            continue
        if _LIST_ITEM.match(line):
            items: list[str] = []
            while i < len(lines) and (_LIST_ITEM.match(lines[i]) or (lines[i].startswith("  ") and lines[i].strip())):
                if _LIST_ITEM.match(lines[i]):
                    items.append(lines[i].strip())
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            lead = units.pop() if units and units[-1].endswith(":") else None
            block = [clean_markdown(item) for item in items]
            if sum(len(item.split()) for item in block) <= MAX_BLOCK_WORDS:
                units.append("\n".join([lead, *block] if lead else block))
            else:
                first, *rest = block
                units.append(f"{lead}\n{first}" if lead else first)
                units.extend(_LIST_ITEM.sub("", item) if not _NUMBERED.match(item) else item for item in rest)
            continue
        paragraph = [stripped]
        i += 1
        while i < len(lines) and lines[i].strip() and not _LIST_ITEM.match(lines[i]) and not lines[i].strip().startswith("|"):
            paragraph.append(lines[i].strip())
            i += 1
        units.extend(clean_markdown(s) for s in _sentences(" ".join(paragraph)))
    return [u for u in units if u]
