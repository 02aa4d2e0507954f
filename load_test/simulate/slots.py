"""Slot values for the ticket templates: one ticket names one app, one city, one invoice...

A template is a `str.format` string; `fill(template, slots)` draws each `{slot}` on first use from
`phrasings.FILLERS` or from a computed value (amounts, dates, codes, contacts, Luhn-valid cards)
and reuses it, so every sentence of a ticket talks about the same things.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from load_test.simulate import phrasings as tpl


def fill(template: str, slots: Slots) -> str:
    """The template with its slots filled (and remembered) from `slots`."""
    return template.format_map(slots)


def _digits(rng: random.Random, k: int) -> str:
    return "".join(rng.choices(string.digits, k=k))


def _amount(rng: random.Random) -> str:
    if rng.random() < 0.3:
        value = rng.randint(9, 99) + 0.99
    else:
        value = rng.randint(100, 9_999) + rng.choice((0.0, 0.5))
    return f"{rng.choice(('$', '€', '£'))}{value:,.2f}"


_MONTHS = ("Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec")


def _date(rng: random.Random) -> str:
    month = rng.choice(_MONTHS)
    day = rng.randint(1, 28)
    return f"{month} {day}" if rng.random() < 0.6 else f"{day} {month}"


def _phone(rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:
        return f"+1 {rng.randint(201, 989)} 555 {_digits(rng, 4)}"
    if style == 1:
        return f"+44 20 7946 {_digits(rng, 4)}"
    return f"+49 30 {_digits(rng, 8)}"


def _phone_ru(rng: random.Random) -> str:
    code, a, b, c = rng.randint(900, 999), _digits(rng, 3), _digits(rng, 2), _digits(rng, 2)
    return f"+7 ({code}) {a}-{b}-{c}" if rng.random() < 0.5 else f"8 {code} {a} {b} {c}"


def _email_address(rng: random.Random) -> str:
    first = rng.choice(tpl.FILLERS["name"]).lower()
    last = rng.choice(tpl.FILLERS["surname"]).lower().replace("ü", "ue")
    return f"{first}.{last}@{rng.choice(('contoso.com', 'fabrikam.com', 'gmail.com', 'northwind.io'))}"


def _card(rng: random.Random) -> str:
    """A Luhn-valid 16-digit number, so a masker that checks Luhn still recognises it."""
    digits = [rng.choice((4, 5))] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        doubled = d * 2 if i % 2 == 0 else d
        total += doubled - 9 if doubled > 9 else doubled
    digits.append((10 - total % 10) % 10)
    raw = "".join(map(str, digits))
    return " ".join(raw[i:i + 4] for i in range(0, 16, 4))


_COMPUTED: dict[str, Callable[[random.Random], str]] = {
    "amount": _amount,
    "amount_ru": lambda r: f"{r.randint(1, 250) * 500:,} ₽".replace(",", " "),
    "invoice": lambda r: f"INV-2026-{_digits(r, 6)}",
    "invoice_ru": lambda r: f"№ {r.randint(100, 99_999)}",
    "date": _date,
    "date_ru": lambda r: f"{r.randint(1, 28):02d}.{r.randint(1, 12):02d}",
    "time": lambda r: f"{r.randint(7, 18)}:{r.choice(('00', '15', '30', '45'))}",
    "n": lambda r: str(r.randint(2, 25)),
    "m": lambda r: str(r.randint(1, 20)),
    "version": lambda r: f"{r.randint(3, 12)}.{r.randint(0, 9)}.{r.randint(0, 20)}",
    "nbx_code": lambda r: f"NBX-{_digits(r, 4)}",
    "ref": lambda r: f"INC{_digits(r, 7)}",
    "emp_id": lambda r: f"E{_digits(r, 5)}",
    "req": lambda r: f"REQ{_digits(r, 6)}",
    "user": lambda r: f"{r.choice(tpl.FILLERS['name'])[0]}.{r.choice(tpl.FILLERS['surname'])}".lower(),
    "full_name": lambda r: f"{r.choice(tpl.FILLERS['name'])} {r.choice(tpl.FILLERS['surname'])}",
    "phone": _phone,
    "phone_ru": _phone_ru,
    "email_addr": _email_address,
    "card": _card,
    "expiry": lambda r: f"{r.randint(1, 12):02d}/{r.randint(27, 31)}",
}


class Slots(dict):
    """Slot values drawn on first use and then reused, so one ticket names one app, one city...

    A slot ending in "2" (city2, dept2) draws a value different from its base slot.
    """

    def __init__(self, rng: random.Random, **preset: str) -> None:
        super().__init__(preset)
        self._rng = rng

    def __missing__(self, key: str) -> str:
        value = self._draw(key)
        self[key] = value
        return value

    def _draw(self, key: str) -> str:
        if key in _COMPUTED:
            return _COMPUTED[key](self._rng)
        if key in tpl.FILLERS:
            return self._rng.choice(tpl.FILLERS[key])
        base = key[:-1]
        if key.endswith("2") and base in tpl.FILLERS:
            first = self[base]
            return self._rng.choice([v for v in tpl.FILLERS[base] if v != first])
        raise KeyError(f"template slot {{{key}}} has no filler")
