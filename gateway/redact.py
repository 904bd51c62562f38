"""Redaction patterns on RE2: time linear in the text whatever the pattern (no backtracking).

Python's `re` backtracks: `[\\w.+-]+@[\\w-]+\\.[\\w.]+` over 120,000 letters took 46 s of one
request's event loop (issue 15). RE2 refuses what it cannot run in linear time
(backreferences, lookaround) when the config is loaded, and its matching of UTF-8 bytes runs
without Python's GIL, so a large body redacted in a thread leaves the event loop free.
`\\w` keeps Python's meaning (any script's letters and digits); RE2's `\\d`, `\\s` and `\\b`
are ASCII (use `\\pN`, `\\pZ` for any script).
"""

from __future__ import annotations

from typing import Any

from re2 import Options, _re2

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_WHOLE = _re2.RE2.Anchor.ANCHOR_BOTH


def _options() -> Any:
    options = Options()
    options.log_errors = False  # errors are raised as ConfigError, not printed to stderr
    options.never_capture = True  # replacements are literal: groups need not be tracked
    return options


_OPTIONS = _options()


def python_words(pattern: str) -> str:
    """`\\w` and `\\W` as Python's `re` means them for text (any script's letters and digits):
    RE2's are ASCII, and a pattern written for `re` would let `josé@example.com` through."""
    out: list[str] = []
    i, in_class, class_start = 0, False, -1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escape = pattern[i + 1]
            if escape == "w":
                out.append(r"\pL\pN_" if in_class else r"[\pL\pN_]")
            elif escape == "W" and not in_class:
                out.append(r"[^\pL\pN_]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if not in_class and char == "[":
            in_class, class_start = True, i + 1
            if pattern[i + 1 : i + 2] == "^":
                class_start += 1
                out.append("[^")
                i += 2
                continue
        elif in_class and char == "]" and i != class_start:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


class RedactPattern:
    """One compiled pattern and its literal replacement, applied to UTF-8 bytes."""

    def __init__(self, pattern: str, replace: str) -> None:
        self.pattern = pattern
        self.replace = replace.encode()
        self._re = _re2.RE2(python_words(pattern).encode(), _OPTIONS)
        if not self._re.ok():
            error = self._re.error()
            reason = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
            raise ValueError(
                f"not a valid regular expression for RE2 ({reason}): redaction runs on RE2, "
                "in linear time, so backreferences (\\1) and lookaround ((?=...), (?<=...)) "
                "are not available; write the pattern without them"
            )
        if self._re.Match(_WHOLE, b"", 0, 0)[0] != (-1, -1):
            raise ValueError(
                f"{pattern!r} matches the empty string, so it would redact between every "
                "character; make it match at least one character (e.g. + instead of *)"
            )

    def sub(self, data: bytes) -> bytes:
        """Every match replaced; `data` unchanged (the same object) when nothing matched."""
        match = self._re.Match
        end = len(data)
        start, stop = match(_UNANCHORED, data, 0, end)[0]
        if start < 0:
            return data
        pieces = []
        last = 0
        while start >= 0:
            pieces.append(data[last:start])
            pieces.append(self.replace)
            last = stop  # matches are never empty (checked above), so this moves on
            start, stop = match(_UNANCHORED, data, stop, end)[0]
        pieces.append(data[last:])
        return b"".join(pieces)


def redact_bytes(patterns: tuple[RedactPattern, ...], data: bytes) -> bytes:
    for pattern in patterns:
        data = pattern.sub(data)
    return data


def redact_text(patterns: tuple[RedactPattern, ...], text: str) -> str:
    data = text.encode("utf-8", errors="surrogatepass")
    out = redact_bytes(patterns, data)
    return text if out is data else out.decode("utf-8", errors="replace")
