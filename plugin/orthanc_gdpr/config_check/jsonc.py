"""Orthanc's configuration syntax: JSON plus ``//`` and ``/* */`` comments (JsonCpp), never
inside strings. Comments are blanked out (newlines kept) so that JSON errors point at the right
line and column of the original file; the scanner is a loop, not a recursion.
"""

from __future__ import annotations

import json
from typing import Any


class ConfigSyntaxError(ValueError):
    """The file is not JSON-with-comments; the message names the line and column."""


def strip_comments(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    start = 0  # start of the current run of code copied verbatim
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            i += 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] in "/*":
            out.append(text[start:i])
            if text[i + 1] == "/":
                end = text.find("\n", i)
                end = n if end < 0 else end
                out.append(" " * (end - i))
            else:
                end = text.find("*/", i + 2)
                if end < 0:
                    line = text.count("\n", 0, i) + 1
                    raise ConfigSyntaxError(f"line {line}: unterminated /* comment")
                end += 2
                out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
            i = start = end
            continue
        i += 1
    out.append(text[start:])
    return "".join(out)


def loads(text: str) -> Any:
    """Parse JSON with comments. Raises ConfigSyntaxError with line and column."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(strip_comments(text))
    except json.JSONDecodeError as e:
        raise ConfigSyntaxError(f"line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise ConfigSyntaxError("nested too deep") from None
