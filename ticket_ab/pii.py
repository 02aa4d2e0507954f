"""Mask e-mail addresses, phone numbers and card-like numbers in ticket text before it is logged.

Identifiers get a keyed hash instead (`pseudonym`): a customer id that is an e-mail address must
not reach the log, but analysis still needs to tell one customer from another.

The request log feeds the DAG as training data, so masking must be aggressive on PII but must keep
what classifies a ticket: error codes (0x80070005, ERR-4012), ticket numbers (INC0012345,
T-1-000123), IPs and versions (10.2.3.4, v3.14.2), dates and amounts. Every pattern therefore
needs a PII-specific shape (an `@`, a leading `+`, a trunk prefix, a phone grouping, or 13-19
digits), and numbers glued to letters or dots are never touched.
"""

from __future__ import annotations

import hashlib
import hmac
import re

EMAIL = "[PII_EMAIL]"
PHONE = "[PII_PHONE]"
CARD = "[PII_CARD]"
PSEUDONYM_HEX = 16  # 64 bits: collisions stay negligible for any realistic number of customers

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
# 13-19 digits, either in one run or in groups of 3-6 (4-4-4-4, 4-6-5, ...) split by one space or dash.
_CARD = re.compile(r"(?<![\w+.,-])(?:\d{13,19}|\d{4}(?:[ -]\d{3,6}){2,4})(?![\w]|[.,]\d)")
# International: "+" and a country code, then digit groups (one may be in parentheses).
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ -]?(?:\(\d{1,5}\)|\d{1,5})){1,6}(?![\w]|[.,]\d)")
# Russian with the trunk prefix 8: 8 912 345-67-89, 8 (912) 345 67 89, 89123456789.
_PHONE_RU = re.compile(r"(?<![\w+.,-])8[ -]?(?:\(\d{3}\)|\d{3})[ -]?\d{3}[ -]?\d{2}[ -]?\d{2}(?![\w]|[.,]\d)")
# Local: (415) 555-0134, 415.555.0134, 912 345-67-89 (the separators are what make it a phone).
_PHONE_LOCAL = re.compile(
    r"(?<![\w+.,-])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}(?:[ .-]\d{4}|[ -]\d{2}[ -]\d{2})(?![\w]|[.,]\d)"
)


def _digits(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _card(match: re.Match[str]) -> str:
    return CARD if 13 <= _digits(match.group()) <= 19 else match.group()


def _intl(match: re.Match[str]) -> str:
    return PHONE if 8 <= _digits(match.group()) <= 15 else match.group()


def mask(text: str) -> str:
    """`text` with PII replaced by [PII_EMAIL], [PII_CARD] and [PII_PHONE]; cards before phones (longer wins)."""
    text = _EMAIL.sub(EMAIL, text)
    text = _CARD.sub(_card, text)
    text = _PHONE_INTL.sub(_intl, text)
    text = _PHONE_RU.sub(PHONE, text)
    return _PHONE_LOCAL.sub(PHONE, text)


def is_personal(value: str) -> bool:
    """`value` holds an e-mail address, a phone or a card number: exactly what `mask` would replace."""
    return mask(value) != value


def pseudonym(value: str, key: bytes, prefix: str) -> str:
    """`prefix` + a keyed hash (HMAC-SHA256) of `value`: stable per value and key, not reversible without the key.

    Keyed, because e-mail addresses and phone numbers are few enough to hash them all: a plain
    hash would be reversed by a dictionary.
    """
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return prefix + digest[:PSEUDONYM_HEX]
