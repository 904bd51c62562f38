"""Replace emails, phone numbers, card numbers, IBANs and IP addresses with placeholders.

Patterns find candidates; checksums (Luhn for cards, mod 97 for IBANs) and `ipaddress` confirm
them, so order numbers and version strings mostly survive. Order matters: an email may hold
digits and a card number looks like a phone number, so the specific kinds go first.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

KINDS: tuple[str, ...] = ("email", "iban", "card", "ip", "phone")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d().\s-]{6,}\d(?![\w:])")
_DIGIT = re.compile(r"\d")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _is_card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_ip(text: str) -> bool:
    if sum(c.isalnum() for c in text) < 3:
        return False  # "::" alone is an address, but in text it is punctuation
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    # A leading + or separators between digit groups: a bare run of digits is an id.
    separated = text.startswith(("+", "(")) or bool(re.search(r"\d[\s.()-]+\d", text))
    return 9 <= len(digits) <= 15 and separated and not _ISO_DATE.match(text)


_CHECKS: tuple[tuple[str, re.Pattern[str], Callable[[str], bool]], ...] = (
    ("email", _EMAIL, lambda _: True),
    ("iban", _IBAN, iban_valid),
    ("card", _CARD, _is_card),
    ("ip", _IPV4, _is_ip),
    ("ip", _IPV6, _is_ip),
    ("phone", _PHONE, _is_phone),
)


def scrub(text: str) -> tuple[str, Counter[str]]:
    """The text with each confirmed match replaced by [KIND], and the count per kind."""
    scrubbed, counts = _scrub(text)
    return scrubbed, Counter(dict(counts))


@lru_cache(maxsize=4096)  # system prompts and label answers repeat on every row
def _scrub(text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    # Most text holds no digits and no '@': skip the patterns that need them.
    has_digit = _DIGIT.search(text) is not None
    found: Counter[str] = Counter()
    for kind, pattern, confirm in _CHECKS:
        if not (has_digit or (kind == "email" and "@" in text) or (kind == "ip" and ":" in text)):
            continue

        def replace(
            match: re.Match[str], kind: str = kind, confirm: Callable[[str], bool] = confirm
        ) -> str:
            candidate = match.group(0).rstrip()
            if not confirm(candidate):
                return match.group(0)
            found[kind] += 1
            return f"[{kind.upper()}]" + match.group(0)[len(candidate) :]

        text = pattern.sub(replace, text)
    return text, tuple(sorted(found.items()))
