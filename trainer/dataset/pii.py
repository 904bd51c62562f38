"""Replace emails, phone numbers, card numbers, IBANs and IP addresses: placeholders or fakes.

Patterns find candidates; checksums (Luhn for cards, mod 97 for IBANs) and `ipaddress` confirm
them, so order numbers and version strings mostly survive. Order matters: an email may hold
digits and a card number looks like a phone number, so the specific kinds go first.

`Pseudonymizer` gives each value a fake of the same kind and shape instead of `[KIND]` (the
same value always the same fake), so an answer that copies a value from its prompt still
copies it after scrubbing: the student learns to copy, not to write `[EMAIL]`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


# What a confirmed value becomes: (kind, value) -> replacement text.
Surrogate = Callable[[str, str], str]


def scrub(text: str, surrogate: Surrogate | None = None) -> tuple[str, Counter[str]]:
    """The text with each confirmed match replaced by [KIND] (or `surrogate`'s fake), and the
    count per kind."""
    scrubbed, counts = _scrub(text, surrogate)
    return scrubbed, Counter(dict(counts))


def _marker(index: int) -> str:
    # Private-use characters: no pattern matches them, so a later kind never rewrites a fake.
    return "\ue000" + "".join(chr(0xE100 + int(d)) for d in str(index)) + "\ue001"


_MARKER = re.compile("\ue000([\ue100-\ue109]+)\ue001")


@lru_cache(maxsize=4096)  # system prompts and label answers repeat on every row
def _scrub(text: str, surrogate: Surrogate | None) -> tuple[str, tuple[tuple[str, int], ...]]:
    # Most text holds no digits and no '@': skip the patterns that need them.
    has_digit = _DIGIT.search(text) is not None
    found: Counter[str] = Counter()
    values: list[tuple[str, str]] = []
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
            values.append((kind, candidate))
            return _marker(len(values) - 1) + match.group(0)[len(candidate) :]

        text = pattern.sub(replace, text)

    def fill(match: re.Match[str]) -> str:
        kind, value = values[int("".join(str(ord(c) - 0xE100) for c in match.group(1)))]
        return surrogate(kind, value) if surrogate else f"[{kind.upper()}]"

    return _MARKER.sub(fill, text), tuple(sorted(found.items()))


@dataclass(frozen=True)
class Pseudonymizer:
    """Fakes of the same kind and shape, fixed per (seed, value): emails at example.com,
    documentation IPs (192.0.2.0/24, 2001:db8::/32), Luhn-valid cards, mod-97-valid IBANs,
    phone numbers with the original's layout."""

    seed: int = 0

    def __call__(self, kind: str, value: str) -> str:
        digest = hashlib.blake2b(f"{self.seed}\x1f{kind}\x1f{value}".encode(), digest_size=16)
        rng = random.Random(int.from_bytes(digest.digest(), "big"))
        if kind == "email":
            return f"user{rng.randrange(10**6):06d}@example.com"
        if kind == "ip":
            if ":" in value:
                return f"2001:db8::{rng.randrange(1, 0x10000):x}"
            return f"192.0.2.{rng.randrange(1, 255)}"
        if kind == "iban":
            return _fake_iban(value, rng)
        digits = [str(rng.randrange(10)) for c in value if c.isdigit()]
        if kind == "card":
            body = "".join(digits[:-1])
            digits[-1] = str(next(d for d in range(10) if luhn_valid(body + str(d))))
        return _relayout(value, iter(digits))


def _relayout(template: str, digits: Iterator[str]) -> str:
    """`template` with each digit replaced by the next of `digits` (separators kept)."""
    return "".join(next(digits) if c.isdigit() else c for c in template)


def _fake_iban(value: str, rng: random.Random) -> str:
    """Same country and layout, random account, check digits recomputed (mod 97)."""
    compact = value.replace(" ", "")
    country = compact[:2]
    bban = "".join(
        str(rng.randrange(10)) if c.isdigit() else chr(65 + rng.randrange(26)) for c in compact[4:]
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = f"{98 - int(numeric) % 97:02d}"
    fake = country + check + bban
    out, i = [], 0
    for c in value:  # put the spaces back where they were
        if c == " ":
            out.append(" ")
        else:
            out.append(fake[i])
            i += 1
    return "".join(out)
