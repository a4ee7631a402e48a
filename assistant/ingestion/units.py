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
    """A table row as text: ``first cell: header2 cell2; header3 cell3`` when there is a header."""
    cells = [clean_markdown(c) for c in line.strip().strip("|").split("|")]
    if not header or len(header) != len(cells) or len(cells) < 2:
        return " - ".join(c for c in cells if c)
    names = [clean_markdown(h) for h in header]
    rest = "; ".join(f"{name}: {cell}" if name else cell for name, cell in zip(names[1:], cells[1:], strict=True) if cell)
    return f"{cells[0]} ({rest})" if rest else cells[0]


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
            block = [clean_markdown(item) for item in items]
            numbered = all(_NUMBERED.match(item) for item in items)
            if numbered and sum(len(item.split()) for item in block) <= MAX_BLOCK_WORDS:
                # A procedure reads as one unit, together with the sentence that introduces it.
                lead = units.pop() if units and units[-1].endswith(":") else None
                units.append("\n".join([lead, *block] if lead else block))
            else:
                # Bullets are separate facts: one unit each, kept as list items.
                units.extend(f"- {_LIST_ITEM.sub('', item)}" if not _NUMBERED.match(item) else item for item in block)
            continue
        paragraph = [stripped]
        i += 1
        while i < len(lines) and lines[i].strip() and not _LIST_ITEM.match(lines[i]) and not lines[i].strip().startswith("|"):
            paragraph.append(lines[i].strip())
            i += 1
        units.extend(clean_markdown(s) for s in _sentences(" ".join(paragraph)))
    return [u for u in units if u]
