"""A realistic, deterministic stream of support tickets, with named distribution shifts.

The whole MLOps loop (A/B router, drift DAG, retraining) is exercised on these tickets, so they
must be hard in the ways real tickets are hard (typos, greetings and signatures, two topics in one
ticket, tickets that say nothing) and the scenarios must shift the distribution in ways a drift
monitor can measure and a retrained model can recover from. `tests/unit/retrain/test_data_story.py` pins
the resulting accuracy story with numbers.

Everything is drawn from one seeded stream, so `generate(n)` is exactly the first `n` tickets of
`iter_tickets` with the same arguments: files written for training and the load tester agree.

Customers differ, as real accounts do: each files a Zipf-skewed share of the stream, has its own
topic mix (the scenario's mix tilted per customer) and its own difficulty (how often it writes
vague, two-topic or typo-ridden tickets). A customer's tickets are therefore alike, so outcomes of
an A/B test are clustered by customer, the way the analysis (issue 11) must be able to show.
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice

import numpy as np
import pandas as pd

from load_test.simulate import phrasings as tpl
from load_test.simulate.slots import Slots, fill
from ticket_ab.schema import LANGUAGES, TOPICS

SCENARIOS: dict[str, str] = {
    "baseline": (
        "The reference month: 8 topics with a skewed mix (access and hardware most common, hr_onboarding "
        "least), 10% Russian, about 11% of tickets mentioning a second topic and 7% vague one-liners."
    ),
    "new_product": (
        "The company rolls out 'Nimbus Workspace': half of the English tickets (about 45% of all) are about "
        "it, spread over the usual topics but written in its own jargon (handles, tenants, seat pools, "
        "Canvas/Vault/Relay/Pulse/Orbit, NBX- error codes) that the baseline never used."
    ),
    "outage": (
        "A network outage: network tickets rise from about 12% to about 46% of the stream, most of them "
        "saying 'down', 'offline', 'outage' or 'packet loss', and they are filed more urgently."
    ),
    "policy_change": (
        "A new expense and procurement policy: billing and purchase tickets rise from 19% to about 52% "
        "combined, and most of them talk about the procurement portal, cost-center approval and "
        "'PO required', terms the baseline never used."
    ),
    "new_language": (
        "A Russian-speaking region joins: Russian rises from 10% to 60% of tickets, and half of the Russian "
        "tickets use a colloquial register and vocabulary ('учётка', 'ноут', 'впн', 'глючит') that the "
        "baseline Russian tickets never used."
    ),
}

COLUMNS = ("ticket_id", "customer_id", "created_at", "text", "topic", "true_topic", "priority", "language")

_BASE_MIX = {
    "access": 0.20,
    "hardware": 0.17,
    "software_bug": 0.14,
    "email": 0.12,
    "network": 0.12,
    "billing": 0.10,
    "purchase": 0.09,
    "hr_onboarding": 0.06,
}
_URGENCY = {"low": 0.22, "medium": 0.43, "high": 0.23, "urgent": 0.12}
_OUTAGE_URGENCY = {"low": 0.02, "medium": 0.18, "high": 0.35, "urgent": 0.45}
# Topics a ticket plausibly mentions besides its own (a broken laptop that also blocks e-mail).
_RELATED = {
    "access": ("email", "network", "software_bug"),
    "billing": ("purchase",),
    "email": ("access", "software_bug"),
    "hardware": ("email", "network", "software_bug", "purchase"),
    "hr_onboarding": ("access", "purchase", "hardware"),
    "network": ("access", "email", "software_bug"),
    "purchase": ("hardware", "billing"),
    "software_bug": ("hardware", "access", "network"),
}
_VAGUE_SHARE = 0.07
_AMBIGUOUS_SHARE = 0.11
_SECOND_PROBLEM_SHARE = 0.75
_CONTEXT_SHARE = 0.22
_LOG_SHARE = 0.10
_GREETING_SHARE = 0.5
_SIGNATURE_SHARE = 0.45
_CONTACT_SHARE = 0.10
_CARD_SHARE = 0.12
_TYPO_RATE = 0.03
_CUSTOMER_ZIPF = 0.7  # popularity exponent: the busiest of 500 customers files about 5% of tickets
_TOPIC_TILT_SD = 0.6  # log-scale spread of a customer's topic preferences around the scenario's mix
_DIFFICULTY_SD = 0.6  # log-scale spread of how vague, ambiguous and typo-prone a customer writes


@dataclass(frozen=True)
class _Profile:
    """What a scenario changes: the topic mix and which writers' pools the tickets come from."""

    mix: dict[str, float] = field(default_factory=lambda: dict(_BASE_MIX))
    ru_share: float = 0.10
    ru_extended_share: float = 0.0
    product_share: float = 0.0
    outage_share: float = 0.0
    policy_share: float = 0.0


def _mix(**shares: float) -> dict[str, float]:
    """The base mix with some topics set to `shares` and the others scaled to fill the rest."""
    rest = 1.0 - sum(shares.values())
    others = {t: w for t, w in _BASE_MIX.items() if t not in shares}
    scale = rest / sum(others.values())
    return {t: shares.get(t, others.get(t, 0.0) * scale) for t in TOPICS}


_WRITERS: dict[str, dict[str, list[str]]] = {
    "en": tpl.EN,
    "ru_core": tpl.RU_CORE,
    "ru_extended": tpl.RU_EXTENDED,
    "new_product": tpl.NEW_PRODUCT,
    "outage": {"network": tpl.OUTAGE},
    "policy": tpl.POLICY,
}

_PROFILES = {
    "baseline": _Profile(),
    "new_product": _Profile(product_share=0.5),
    "outage": _Profile(mix=_mix(network=0.46), outage_share=0.75),
    "policy_change": _Profile(mix=_mix(billing=0.27, purchase=0.25), policy_share=0.7),
    "new_language": _Profile(ru_share=0.60, ru_extended_share=0.5),
}


@dataclass(frozen=True)
class _Customers:
    """The customer pool: ids, cumulative popularity, and per customer a topic mix and a difficulty."""

    ids: list[str]
    popularity: list[float]
    topic_weights: list[list[float]]  # cumulative, one row per customer, over `topics`
    difficulty: list[float]  # multiplies the vague, ambiguous and typo rates; mean 1 over customers
    topics: list[str]


@dataclass(frozen=True)
class _Config:
    profile: _Profile
    seed: int
    ru_share: float
    label_noise: float
    start: datetime
    customers: int


def generate(
    scenario: str = "baseline",
    n: int = 1000,
    seed: int = 0,
    *,
    ru_share: float | None = None,
    label_noise: float = 0.0,
    start: str = "2026-01-01T00:00:00Z",
    customers: int = 500,
) -> pd.DataFrame:
    """The first `n` tickets of the scenario's stream as a frame (columns in `COLUMNS` order).

    `ru_share` overrides the scenario's Russian share; `label_noise` is the probability that the
    agent's `topic` differs from `true_topic`, for testing training under noisy labels.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    stream = iter_tickets(
        scenario, seed, ru_share=ru_share, label_noise=label_noise, start=start, customers=customers
    )
    return pd.DataFrame(list(islice(stream, int(n))), columns=list(COLUMNS))


def iter_tickets(
    scenario: str = "baseline",
    seed: int = 0,
    *,
    ru_share: float | None = None,
    label_noise: float = 0.0,
    start: str = "2026-01-01T00:00:00Z",
    customers: int = 500,
) -> Iterator[dict]:
    """An endless stream of ticket dicts; arguments are checked now, not at the first `next()`."""
    config = _config(scenario, seed, ru_share, label_noise, start, customers)
    return _stream(config)


def _config(
    scenario: str, seed: int, ru_share: float | None, label_noise: float, start: str, customers: int
) -> _Config:
    if scenario not in _PROFILES:
        raise ValueError(f"unknown scenario {scenario!r}; known scenarios: {', '.join(SCENARIOS)}")
    profile = _PROFILES[scenario]
    share = profile.ru_share if ru_share is None else ru_share
    for name, value in (("ru_share", share), ("label_noise", label_noise)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {value!r}")
    if isinstance(customers, bool) or not isinstance(customers, numbers.Integral) or customers < 1:
        raise ValueError(f"customers must be a positive integer, got {customers!r}")
    return _Config(profile, seed, float(share), float(label_noise), _parse_start(start), int(customers))


def _parse_start(start: str) -> datetime:
    """An ISO timestamp; a naive one is taken as UTC, since every timestamp we write is UTC."""
    try:
        moment = datetime.fromisoformat(start)
    except (TypeError, ValueError):
        raise ValueError(f"start must be an ISO timestamp like 2026-01-01T00:00:00Z, got {start!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _stream(config: _Config) -> Iterator[dict]:
    seeds = np.random.default_rng(config.seed)
    rng = random.Random(int(seeds.integers(2**63)))
    # Label noise draws from its own stream, so noisy and clean runs hold the very same tickets.
    label_rng = random.Random(int(seeds.integers(2**63)))
    pool = _customer_pool(config.customers, config.profile.mix, seeds)
    moment = config.start
    index = 0
    while True:
        index += 1
        moment = _next_arrival(moment, rng)
        who = rng.choices(range(len(pool.ids)), cum_weights=pool.popularity)[0]
        topic = rng.choices(pool.topics, cum_weights=pool.topic_weights[who])[0]
        text, priority, language = _write_ticket(topic, moment, config, rng, pool.difficulty[who])
        yield {
            "ticket_id": f"T-{config.seed}-{index:06d}",
            "customer_id": pool.ids[who],
            "created_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "text": text,
            "topic": _agent_label(topic, config.label_noise, label_rng),
            "true_topic": topic,
            "priority": priority,
            "language": language,
        }


def _customer_pool(customers: int, mix: dict[str, float], seeds: np.random.Generator) -> _Customers:
    """Customer ids with Zipf-like popularity (a few accounts file a large share of all tickets), each
    with its own tilt of the scenario's topic mix and its own difficulty (lognormal, mean 1)."""
    width = max(5, len(str(customers)))
    ids = [f"C-{i:0{width}d}" for i in range(1, customers + 1)]
    weights = 1.0 / np.arange(1, customers + 1) ** _CUSTOMER_ZIPF
    weights = weights[seeds.permutation(customers)]
    topics = list(mix)
    tilted = np.asarray(list(mix.values())) * seeds.lognormal(0.0, _TOPIC_TILT_SD, size=(customers, len(topics)))
    difficulty = seeds.lognormal(-_DIFFICULTY_SD**2 / 2, _DIFFICULTY_SD, size=customers)
    return _Customers(ids, list(np.cumsum(weights / weights.sum())),
                      np.cumsum(tilted / tilted.sum(axis=1, keepdims=True), axis=1).tolist(),
                      difficulty.tolist(), topics)


def _next_arrival(moment: datetime, rng: random.Random) -> datetime:
    """Poisson arrivals that are dense in office hours and sparse at night and at weekends."""
    if moment.weekday() >= 5:
        mean = 600.0
    elif 8 <= moment.hour < 18:
        mean = 45.0
    else:
        mean = 240.0
    return moment + timedelta(seconds=1 + int(rng.expovariate(1.0 / mean)))


def _agent_label(topic: str, label_noise: float, rng: random.Random) -> str:
    """The label an agent files: usually the true topic, another topic with probability `label_noise`."""
    if label_noise and rng.random() < label_noise:
        return rng.choice([t for t in TOPICS if t != topic])
    return topic


def _write_ticket(topic: str, moment: datetime, config: _Config, rng: random.Random,
                  difficulty: float = 1.0) -> tuple[str, str, str]:
    """Compose one ticket: body (maybe vague or two-topic), context, typos, urgency, PII, framing;
    `difficulty` scales how often this customer is vague, ambiguous or mistyped."""
    language = LANGUAGES[1] if rng.random() < config.ru_share else LANGUAGES[0]
    slots = Slots(rng, ts=(moment - timedelta(minutes=rng.randint(1, 90))).strftime("%Y-%m-%d %H:%M:%S"))
    writer = _pick_writer(topic, language, config.profile, rng)
    body = _add_typos(_body(topic, language, writer, rng, slots, difficulty), rng, difficulty)
    extra = _extra_paragraph(topic, language, writer, rng, slots)
    priority = _draw(_OUTAGE_URGENCY if writer == "outage" else _URGENCY, rng)
    body = _add_urgency(body, priority, language, rng, slots)
    paragraphs = [p for p in (body, extra, _pii_line(topic, language, rng, slots)) if p]
    return _frame(paragraphs, language, rng, slots), priority, language


def _pick_writer(topic: str, language: str, profile: _Profile, rng: random.Random) -> str:
    """Which writers this ticket comes from: the drift scenarios are changes of who writes."""
    if language == "ru":
        return "ru_extended" if rng.random() < profile.ru_extended_share else "ru_core"
    if profile.product_share and rng.random() < profile.product_share:
        return "new_product"
    if topic == "network" and profile.outage_share and rng.random() < profile.outage_share:
        return "outage"
    if topic in tpl.POLICY and profile.policy_share and rng.random() < profile.policy_share:
        return "policy"
    return "en"


def _phrasings(writer: str, topic: str) -> list[str]:
    """The writer's phrasings for a topic; event writers (outage, policy) only cover their topics."""
    return _WRITERS[writer].get(topic) or tpl.EN[topic]


def _body(topic: str, language: str, writer: str, rng: random.Random, slots: Slots, difficulty: float = 1.0) -> str:
    """The problem statement: vague, single-topic, or primary topic plus a second one.

    A second topic is either a short side remark or a whole second problem; a bag-of-words model
    cannot tell which one the agent filed the ticket under, which is the realistic ceiling.
    """
    if rng.random() < _VAGUE_SHARE * difficulty:
        return fill(rng.choice(tpl.VAGUE[language]), slots)
    body = fill(rng.choice(_phrasings(writer, topic)), slots)
    if rng.random() >= _AMBIGUOUS_SHARE * difficulty:
        return body
    other = rng.choice(_RELATED[topic])
    if rng.random() < _SECOND_PROBLEM_SHARE:
        second = rng.choice(tpl.SECOND_PROBLEM_INTROS[language]) + rng.choice(_phrasings(writer, other))
    else:
        second = rng.choice(tpl.SECONDARY[language][other])
    return f"{body} {fill(second, slots)}"


def _extra_paragraph(topic: str, language: str, writer: str, rng: random.Random, slots: Slots) -> str:
    """Sometimes a second paragraph: typed context, or a pasted (so typo-free) log line with topic signal."""
    draw = rng.random()
    if draw < _LOG_SHARE:
        lines = tpl.NEW_PRODUCT_LOG_LINES if writer == "new_product" else tpl.LOG_LINES[topic]
        return f"{rng.choice(tpl.LOG_INTRO[language])}\n{fill(rng.choice(lines), slots)}"
    if draw < _LOG_SHARE + _CONTEXT_SHARE:
        return _add_typos(fill(rng.choice(tpl.CONTEXT[language]), slots), rng)
    return ""


def _add_typos(text: str, rng: random.Random, difficulty: float = 1.0) -> str:
    """Swap, drop or double a letter in a few words, as people typing fast do; codes stay intact."""
    words = text.split(" ")
    for i, word in enumerate(words):
        core = word.rstrip(".,!?:;)'»")
        if len(core) < 4 or not core.isalpha() or core.isupper() or rng.random() >= _TYPO_RATE * difficulty:
            continue
        words[i] = _misspell(core, rng) + word[len(core):]
    return " ".join(words)


def _misspell(word: str, rng: random.Random) -> str:
    pos = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:pos] + word[pos + 1] + word[pos] + word[pos + 2:]
    if kind == 1:
        return word[:pos] + word[pos + 1:]
    return word[:pos] + word[pos] + word[pos:]


def _add_urgency(body: str, priority: str, language: str, rng: random.Random, slots: Slots) -> str:
    """Write the priority into the text as a user would: a prefix or a closing sentence (none: medium)."""
    if priority == "medium":
        return body
    prefixes = tpl.URGENCY_PREFIXES[language][priority]
    if prefixes and rng.random() < 0.35:
        return rng.choice(prefixes) + body
    sentence = fill(rng.choice(tpl.URGENCY_SENTENCES[language][priority]), slots)
    return f"{body} {sentence}"


def _pii_line(topic: str, language: str, rng: random.Random, slots: Slots) -> str:
    """Contact details (and, in a few billing tickets, a card number) that the router must mask."""
    lines = []
    if rng.random() < _CONTACT_SHARE:
        lines.append(fill(rng.choice(tpl.CONTACT_LINES[language]), slots))
    if topic == "billing" and language == "en" and rng.random() < _CARD_SHARE:
        lines.append(fill(rng.choice(tpl.CARD_LINES), slots))
    return " ".join(lines)


def _frame(paragraphs: list[str], language: str, rng: random.Random, slots: Slots) -> str:
    """Greeting, paragraphs and signature, laid out the way mail clients and web forms send them."""
    text = "\n\n".join(paragraphs)
    if rng.random() < _GREETING_SHARE:
        separator = "\n\n" if rng.random() < 0.6 else "\n"
        text = rng.choice(tpl.GREETINGS[language]) + separator + text
    if rng.random() < _SIGNATURE_SHARE:
        text = f"{text}\n\n{fill(rng.choice(tpl.SIGNATURES[language]), slots)}"
    return text


def _draw(weights: dict[str, float], rng: random.Random) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]
