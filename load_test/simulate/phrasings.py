"""Phrasings and slot fillers for the ticket generator, read from the package's `phrasings.json`.

The data lives in JSON so the generator reads as an algorithm and the data file reads as what real
helpdesk users write (and can be reviewed or extended without touching code); its `about` section
says what each pool is for. Templates are `str.format` strings whose `{slots}` are filled from
`FILLERS` (or from the computed slots in `load_test.simulate.slots`: amounts, dates, codes, contacts).

Pools are split by *who* writes them, because the drift scenarios are changes of who writes:
`EN` and `RU_CORE` are the baseline; `RU_EXTENDED` is the new Russian-speaking region (a different,
colloquial register with other vocabulary); `NEW_PRODUCT` is written in the jargon of a product the
baseline never saw; `OUTAGE` and `POLICY` carry the wording of those two events.
No template may contain an urgency cue (see `URGENCY_CUES`): priority is set only by the cue the
generator adds, so the label stays predictable from the text.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

_DATA: dict[str, Any] = json.loads(files("load_test.simulate").joinpath("phrasings.json").read_text(encoding="utf-8"))

ABOUT: dict[str, str] = _DATA["about"]

EN: dict[str, list[str]] = _DATA["EN"]
RU_CORE: dict[str, list[str]] = _DATA["RU_CORE"]
RU_EXTENDED: dict[str, list[str]] = _DATA["RU_EXTENDED"]
NEW_PRODUCT: dict[str, list[str]] = _DATA["NEW_PRODUCT"]
OUTAGE: list[str] = _DATA["OUTAGE"]
POLICY: dict[str, list[str]] = _DATA["POLICY"]

VAGUE: dict[str, list[str]] = _DATA["VAGUE"]
SECONDARY: dict[str, dict[str, list[str]]] = _DATA["SECONDARY"]
SECOND_PROBLEM_INTROS: dict[str, list[str]] = _DATA["SECOND_PROBLEM_INTROS"]
CONTEXT: dict[str, list[str]] = _DATA["CONTEXT"]
LOG_LINES: dict[str, list[str]] = _DATA["LOG_LINES"]
NEW_PRODUCT_LOG_LINES: list[str] = _DATA["NEW_PRODUCT_LOG_LINES"]
LOG_INTRO: dict[str, list[str]] = _DATA["LOG_INTRO"]
GREETINGS: dict[str, list[str]] = _DATA["GREETINGS"]
SIGNATURES: dict[str, list[str]] = _DATA["SIGNATURES"]
CONTACT_LINES: dict[str, list[str]] = _DATA["CONTACT_LINES"]
CARD_LINES: list[str] = _DATA["CARD_LINES"]

URGENCY_PREFIXES: dict[str, dict[str, list[str]]] = _DATA["URGENCY_PREFIXES"]
URGENCY_SENTENCES: dict[str, dict[str, list[str]]] = _DATA["URGENCY_SENTENCES"]
URGENCY_CUES: dict[str, tuple[str, ...]] = {level: tuple(cues) for level, cues in _DATA["URGENCY_CUES"].items()}

NEW_PRODUCT_TERMS: tuple[str, ...] = tuple(_DATA["NEW_PRODUCT_TERMS"])
POLICY_TERMS: tuple[str, ...] = tuple(_DATA["POLICY_TERMS"])
OUTAGE_TERMS: tuple[str, ...] = tuple(_DATA["OUTAGE_TERMS"])

FILLERS: dict[str, list[str]] = _DATA["FILLERS"]
