"""Specification of the ticket generator: contract, determinism, realism and the drift scenarios."""

from __future__ import annotations

import random
import re
import time
from itertools import islice

import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from load_test.simulate import phrasings as tpl
from load_test.simulate.generator import COLUMNS, SCENARIOS, generate, iter_tickets
from load_test.simulate.slots import Slots, fill
from ticket_ab.schema import LANGUAGES, PRIORITIES, TOPICS

N = 10_000


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return generate("baseline", N, seed=11)


@pytest.fixture(scope="module")
def scenario_frames() -> dict[str, pd.DataFrame]:
    return {name: generate(name, 5000, seed=12) for name in SCENARIOS if name != "baseline"}


def _share(texts: pd.Series, terms: tuple[str, ...]) -> float:
    lowered = texts.str.lower()
    return float(lowered.map(lambda text: any(term in text for term in terms)).mean())


def _all_pools() -> dict[str, list[str]]:
    """Every phrasing the generator can emit, by pool name."""
    pools: dict[str, list[str]] = {"outage": tpl.OUTAGE, "card": tpl.CARD_LINES,
                                   "product_logs": tpl.NEW_PRODUCT_LOG_LINES}
    for name in ("EN", "RU_CORE", "RU_EXTENDED", "NEW_PRODUCT", "POLICY", "LOG_LINES"):
        for topic, phrasings in getattr(tpl, name).items():
            pools[f"{name}.{topic}"] = phrasings
    for name in ("VAGUE", "CONTEXT", "GREETINGS", "SIGNATURES", "CONTACT_LINES", "LOG_INTRO",
                 "SECOND_PROBLEM_INTROS"):
        for language, phrasings in getattr(tpl, name).items():
            pools[f"{name}.{language}"] = phrasings
    for language, by_topic in tpl.SECONDARY.items():
        for topic, phrasings in by_topic.items():
            pools[f"SECONDARY.{language}.{topic}"] = phrasings
    return pools


def _as_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+?", re.escape(template)))


# --- contract ---------------------------------------------------------------------------------


def test_columns_come_in_the_documented_order(baseline):
    assert list(baseline.columns) == [
        "ticket_id", "customer_id", "created_at", "text", "topic", "true_topic", "priority", "language"
    ]
    assert list(COLUMNS) == list(baseline.columns)
    assert set(baseline.topic) == set(TOPICS)
    assert set(baseline.priority) == set(PRIORITIES)
    assert set(baseline.language) == set(LANGUAGES)


def test_same_seed_gives_identical_tickets():
    first = generate("new_product", 500, seed=3, ru_share=0.2, label_noise=0.1)
    second = generate("new_product", 500, seed=3, ru_share=0.2, label_noise=0.1)
    pd.testing.assert_frame_equal(first, second)


def test_different_seeds_give_different_tickets():
    first, second = generate("baseline", 300, seed=1), generate("baseline", 300, seed=2)
    assert (first.text != second.text).mean() > 0.9
    assert first.ticket_id.iloc[0] == "T-1-000001" and second.ticket_id.iloc[0] == "T-2-000001"


def test_generate_equals_prefix_of_stream():
    kwargs = {"ru_share": 0.3, "label_noise": 0.05, "start": "2026-03-01T08:00:00Z", "customers": 50}
    frame = generate("outage", 700, seed=5, **kwargs)
    stream = iter_tickets("outage", seed=5, **kwargs)
    streamed = pd.DataFrame(list(islice(stream, 700)), columns=list(COLUMNS))
    pd.testing.assert_frame_equal(frame, streamed)
    assert list(islice(iter_tickets("outage", seed=5, **kwargs), 701))[-1]["ticket_id"] == "T-5-000701"


def test_unknown_scenario_is_rejected_with_known_names():
    with pytest.raises(ValueError, match="unknown scenario 'black_friday'") as error:
        generate("black_friday", 10)
    for name in SCENARIOS:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="known scenarios"):
        iter_tickets("black_friday")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": -5}, "n must be a positive integer"),
        ({"ru_share": 1.5}, r"ru_share must be within \[0, 1\]"),
        ({"ru_share": -0.1}, r"ru_share must be within \[0, 1\]"),
        ({"label_noise": 1.01}, r"label_noise must be within \[0, 1\]"),
        ({"customers": 0}, "customers must be a positive integer"),
        ({"start": "yesterday"}, "start must be an ISO timestamp"),
    ],
)
def test_invalid_sizes_and_shares_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(**kwargs)


def test_ticket_ids_are_unique_and_timestamps_increase_in_utc(baseline):
    assert baseline.ticket_id.is_unique
    assert baseline.ticket_id.iloc[-1] == f"T-11-{N:06d}"
    assert baseline.created_at.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    stamps = pd.to_datetime(baseline.created_at, utc=True)
    assert stamps.is_monotonic_increasing and stamps.is_unique
    assert stamps.iloc[0] >= pd.Timestamp("2026-01-01T00:00:00Z")
    shifted = generate("baseline", 5, seed=11, start="2026-06-01T12:00:00+02:00")
    assert shifted.created_at.iloc[0].startswith("2026-06-01T10:")


def test_tickets_arrive_mostly_in_office_hours(baseline):
    stamps = pd.to_datetime(baseline.created_at, utc=True)
    office = (stamps.dt.weekday < 5) & stamps.dt.hour.between(8, 17)
    assert office.mean() > 0.6, f"only {office.mean():.0%} of tickets in office hours"


def test_a_few_customers_file_many_tickets(baseline):
    assert baseline.customer_id.str.fullmatch(r"C-\d{5}").all()
    assert baseline.customer_id.nunique() <= 500
    counts = baseline.customer_id.value_counts()
    top_tenth = counts.iloc[:50].sum() / N
    assert top_tenth > 0.3, f"the busiest 10% of customers file only {top_tenth:.0%} of tickets"
    assert counts.iloc[0] / N < 0.15, "one customer should not dominate the stream"
    small_pool = generate("baseline", 500, seed=1, customers=7)
    assert small_pool.customer_id.nunique() <= 7


def test_customers_differ_in_topic_mix_and_difficulty_so_their_tickets_are_clustered(baseline):
    """A customer's tickets are alike; an A/B analysis over customers must be able to see that."""
    busiest = baseline.customer_id.value_counts().index[:20]
    tickets = baseline[baseline.customer_id.isin(busiest)]
    mix = pd.crosstab(tickets.customer_id, tickets.true_topic)
    assert chi2_contingency(mix).pvalue < 1e-6, "every customer files the same topic mix"
    vague = tickets.text.map(lambda text: any(_as_pattern(t).search(text) for t in tpl.VAGUE["en"]))
    spread = pd.crosstab(tickets.customer_id, vague)
    assert chi2_contingency(spread).pvalue < 1e-3, "every customer is equally vague"


def test_topic_mix_is_skewed_toward_access_and_hardware(baseline):
    shares = baseline.topic.value_counts(normalize=True)
    assert set(shares.index[:2]) == {"access", "hardware"}, shares.to_dict()
    assert shares.index[-1] == "hr_onboarding", shares.to_dict()
    assert shares.max() / shares.min() > 2.5, shares.to_dict()


# --- phrasings --------------------------------------------------------------------------------


def test_the_phrasing_data_file_says_what_every_pool_is_for():
    pools = {name for name in vars(tpl) if name.isupper() and not name.startswith("_")} - {"ABOUT"}
    assert set(tpl.ABOUT) == pools
    assert all(len(description) > 15 for description in tpl.ABOUT.values())


def test_every_topic_has_at_least_40_english_phrasings():
    assert set(tpl.EN) == set(TOPICS)
    for topic, phrasings in tpl.EN.items():
        distinct = len(set(phrasings))
        assert distinct == len(phrasings) >= 40, f"{topic}: {distinct} distinct of {len(phrasings)} phrasings"


def test_every_topic_has_russian_phrasings_in_two_registers():
    for pool in (tpl.RU_CORE, tpl.RU_EXTENDED):
        assert set(pool) == set(TOPICS)
        for topic, phrasings in pool.items():
            assert len(set(phrasings)) >= 15, f"{topic}: {len(set(phrasings))} Russian phrasings"
            assert all(re.search("[а-яё]", p.lower()) for p in phrasings), topic
    core = {p for ps in tpl.RU_CORE.values() for p in ps}
    assert not core & {p for ps in tpl.RU_EXTENDED.values() for p in ps}


def test_new_product_phrasings_cover_every_topic_in_product_jargon():
    assert set(tpl.NEW_PRODUCT) == set(TOPICS)
    for topic, phrasings in tpl.NEW_PRODUCT.items():
        assert len(phrasings) >= 12, topic
        for phrasing in phrasings:
            assert any(term in phrasing.lower() for term in tpl.NEW_PRODUCT_TERMS), phrasing


def test_every_template_slot_has_a_filler():
    rng = random.Random(0)
    for name, phrasings in _all_pools().items():
        for phrasing in phrasings:
            rendered = fill(phrasing, Slots(rng, ts="2026-01-01 00:00:00"))
            assert "{" not in rendered and "}" not in rendered, f"{name}: {rendered}"


def test_templates_carry_no_urgency_cues():
    cues = [cue for level in tpl.URGENCY_CUES.values() for cue in level]
    for name, phrasings in _all_pools().items():
        for phrasing in phrasings:
            found = [cue for cue in cues if cue in phrasing.lower()]
            assert not found, f"{name}: {phrasing!r} contains urgency cue(s) {found}"


def test_urgency_phrases_carry_only_their_own_level():
    order = ["low", "high", "urgent"]
    for language in tpl.URGENCY_SENTENCES:
        for level in order:
            phrases = tpl.URGENCY_SENTENCES[language][level] + tpl.URGENCY_PREFIXES[language][level]
            for phrase in phrases:
                lowered = phrase.lower()
                assert any(cue in lowered for cue in tpl.URGENCY_CUES[level]), phrase
                higher = [c for lvl in order[order.index(level) + 1:] for c in tpl.URGENCY_CUES[lvl]]
                assert not any(cue in lowered for cue in higher), phrase


# --- realism ----------------------------------------------------------------------------------


def test_priority_follows_urgency_cues(baseline):
    def level_in(text: str) -> str:
        lowered = text.lower()
        for level in ("urgent", "high", "low"):
            if any(cue in lowered for cue in tpl.URGENCY_CUES[level]):
                return level
        return "medium"

    from_text = baseline.text.map(level_in)
    mismatches = baseline[from_text != baseline.priority]
    assert mismatches.empty, mismatches[["text", "priority"]].head().to_dict("records")
    shares = baseline.priority.value_counts(normalize=True)
    assert 0.05 < shares["urgent"] < shares["high"] < shares["medium"], shares.to_dict()
    assert (baseline[baseline.text.str.contains("ASAP|production down|срочно", case=False)].priority
            == "urgent").all()


def test_outage_tickets_are_filed_more_urgently(baseline, scenario_frames):
    def urgent_share(frame: pd.DataFrame) -> float:
        return float(frame[frame.topic == "network"].priority.isin(["high", "urgent"]).mean())

    assert urgent_share(scenario_frames["outage"]) > urgent_share(baseline) + 0.2


def test_label_noise_flips_the_requested_share():
    clean = generate("baseline", 4000, seed=6)
    assert (clean.topic == clean.true_topic).all()
    noisy = generate("baseline", 4000, seed=6, label_noise=0.2)
    flipped = float((noisy.topic != noisy.true_topic).mean())
    assert 0.17 < flipped < 0.23, f"flipped {flipped:.3f}, asked 0.20"
    assert noisy.topic.isin(TOPICS).all()
    assert (noisy.text == clean.text).all(), "label noise must not change the tickets themselves"


def test_baseline_is_a_tenth_russian_and_language_matches_the_script(baseline):
    ru = baseline.language == "ru"
    assert 0.08 < ru.mean() < 0.12, f"Russian share {ru.mean():.3f}"
    cyrillic = baseline.text.str.contains("[а-яА-ЯёЁ]")
    assert (cyrillic == ru).all()
    override = generate("baseline", 2000, seed=3, ru_share=0.5)
    assert 0.45 < (override.language == "ru").mean() < 0.55


def test_about_a_tenth_of_tickets_mention_a_second_topic(baseline):
    intros = [intro for ps in tpl.SECOND_PROBLEM_INTROS.values() for intro in ps]
    remarks = [_as_pattern(p) for by_topic in tpl.SECONDARY.values() for ps in by_topic.values() for p in ps]
    two_topics = baseline.text.map(lambda t: any(i in t for i in intros) or any(r.search(t) for r in remarks))
    assert 0.07 < two_topics.mean() < 0.13, f"{two_topics.mean():.3f} of tickets mention a second topic"


def test_typos_touch_a_small_share_of_words(baseline):
    known: set[str] = set()
    for phrasings in [*_all_pools().values(), *tpl.FILLERS.values(), *tpl.URGENCY_SENTENCES["en"].values(),
                      *tpl.URGENCY_SENTENCES["ru"].values()]:
        for phrasing in phrasings:
            known.update(re.findall(r"[^\W\d_]+", phrasing.lower()))
    words = baseline.text.str.lower().str.findall(r"[^\W\d_]+")
    unknown = words.map(lambda ws: sum(w not in known for w in ws))
    word_share = unknown.sum() / words.map(len).sum()
    assert 0.003 < word_share < 0.03, f"{word_share:.4f} of words misspelt"
    assert 0.05 < (unknown > 0).mean() < 0.5, f"{(unknown > 0).mean():.3f} of tickets have a typo"


def test_tickets_range_from_one_liners_to_framed_multi_paragraph_mails(baseline):
    text = baseline.text
    greeted = text.map(lambda t: any(t.startswith(g) for gs in tpl.GREETINGS.values() for g in gs))
    assert 0.35 < greeted.mean() < 0.65, f"greeting share {greeted.mean():.3f}"
    assert text.str.contains("Sent from my iPhone", regex=False).mean() > 0.01
    assert text.str.contains("Thanks, ", regex=False).mean() > 0.01
    one_liners = ~text.str.contains("\n") & (text.str.len() < 100)
    assert one_liners.mean() > 0.08, f"one-liner share {one_liners.mean():.3f}"
    body_paragraphs = text.map(lambda t: len([p for p in t.split("\n\n") if len(p) > 25]))
    assert (body_paragraphs >= 2).mean() > 0.15
    assert text.str.contains(r"\d\d:\d\d:\d\d (?:ERROR|WARN|INFO|FATAL) ").mean() > 0.05
    assert text.str.len().describe()["max"] > 4 * text.str.len().describe()["25%"]


def test_a_minority_of_tickets_carry_pii_and_cards_only_in_billing(baseline):
    email = baseline.text.str.contains(r"[\w.]+@[\w-]+\.\w+")
    phone = baseline.text.str.contains(r"\+\d{1,2} \(?\d{2,3}\)? \d|\b8 9\d\d \d{3} \d\d \d\d")
    card = baseline.text.str.contains(r"\b\d{4} \d{4} \d{4} \d{4}\b")
    pii = email | phone | card
    assert 0.05 < pii.mean() < 0.25, f"PII share {pii.mean():.3f}"
    assert phone.mean() > 0.03 and card.sum() > 10
    assert (baseline[card].true_topic == "billing").all()


def test_ten_thousand_tickets_take_under_two_seconds():
    started = time.perf_counter()
    generate("new_language", 10_000, seed=9)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"10,000 tickets took {elapsed:.2f} s"


# --- scenarios --------------------------------------------------------------------------------


def test_scenarios_are_documented():
    assert set(SCENARIOS) == {"baseline", "new_product", "outage", "policy_change", "new_language"}
    for name, description in SCENARIOS.items():
        assert len(description) > 80, name


def test_new_product_vocabulary_reaches_35_percent(baseline, scenario_frames):
    share = _share(scenario_frames["new_product"].text, tpl.NEW_PRODUCT_TERMS)
    assert share >= 0.35, f"product vocabulary in {share:.1%} of new_product tickets"
    assert _share(baseline.text, tpl.NEW_PRODUCT_TERMS) < 0.01
    product = scenario_frames["new_product"][scenario_frames["new_product"].text.str.contains("Nimbus")]
    assert product.true_topic.nunique() == len(TOPICS), "the product must touch every topic"


def test_outage_shifts_class_mix_to_network(baseline, scenario_frames):
    outage = scenario_frames["outage"]
    before, after = (baseline.topic == "network").mean(), (outage.topic == "network").mean()
    assert 0.09 < before < 0.15, f"baseline network share {before:.3f}"
    assert after >= 0.40, f"outage network share {after:.3f}"
    network = outage[(outage.topic == "network") & (outage.language == "en")]
    assert _share(network.text, tpl.OUTAGE_TERMS) > 0.6


def test_policy_change_surges_billing_and_purchase(baseline, scenario_frames):
    policy = scenario_frames["policy_change"]
    before = baseline.topic.isin(["billing", "purchase"]).mean()
    after = policy.topic.isin(["billing", "purchase"]).mean()
    assert after >= 0.45 and after > before + 0.25, f"billing+purchase {before:.3f} -> {after:.3f}"
    surged = policy[policy.topic.isin(["billing", "purchase"])]
    assert _share(surged.text, tpl.POLICY_TERMS) > 0.5
    assert _share(baseline.text, tpl.POLICY_TERMS) == 0.0


def test_new_language_raises_russian_share(scenario_frames):
    share = (scenario_frames["new_language"].language == "ru").mean()
    assert share >= 0.55, f"Russian share {share:.3f}"


def test_new_language_brings_russian_wording_the_baseline_never_used(baseline, scenario_frames):
    def words(text: str) -> set[str]:
        return set(re.findall(r"[а-яё]{4,}", text.lower()))

    seen = set().union(*baseline[baseline.language == "ru"].text.map(words))
    russian = scenario_frames["new_language"].query("language == 'ru'").text
    novel = russian.map(lambda t: len(words(t) - seen) >= 2).mean()
    fresh_baseline = generate("baseline", 5000, seed=13).query("language == 'ru'").text
    baseline_novel = fresh_baseline.map(lambda t: len(words(t) - seen) >= 2).mean()
    assert novel > 0.3, f"only {novel:.1%} of Russian tickets bring new wording"
    assert baseline_novel < 0.05, f"{baseline_novel:.1%} of fresh baseline Russian tickets look new"


def test_scenarios_keep_every_topic_and_valid_values(scenario_frames):
    for name, frame in scenario_frames.items():
        assert set(frame.topic) == set(TOPICS), name
        assert frame.priority.isin(PRIORITIES).all() and frame.language.isin(LANGUAGES).all(), name
        assert not frame.text.str.contains("[{}]").any(), name
        assert (frame.text.str.strip() == frame.text).all() and frame.text.str.len().min() > 3, name
