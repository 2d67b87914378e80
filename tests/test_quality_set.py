"""The labelled quality set and the scoring of bench/quality.py, on hand-made outcomes.

No model is loaded here: the engine is replaced by fakes where the script needs one.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _load_quality_module() -> types.ModuleType:
    # bench/ is a folder of scripts, not a package.
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


quality = _load_quality_module()
EMAILS = quality.load_quality_set()


@dataclass
class FakeOutcome:
    """The parts of a DraftOutcome that the scorer reads."""

    intent: str
    confidence: float = 0.9
    fields: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    completion_tokens: int = 10


def field_values(**values: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Fields as the pipeline stores them, with provenance."""
    return {
        name: [{"value": v, "source": "pattern", "span": None, "verified": True} for v in vs]
        for name, vs in values.items()
    }


def perfect(email) -> FakeOutcome:
    """The outcome a perfect model would give, plus a free-text problem (never scored)."""
    fields = field_values(**email.expected, problem=["something is broken"])
    return FakeOutcome(intent=email.intent, fields=fields)


def email_by_id(email_id: str):
    return next(e for e in EMAILS if e.id == email_id)


# --- The set -------------------------------------------------------------------------------


def test_the_set_loads_with_at_least_66_emails():
    assert len(EMAILS) >= 66


def test_ids_are_unique_and_name_the_language_and_intent():
    assert len({e.id for e in EMAILS}) == len(EMAILS)
    for email in EMAILS:
        assert re.fullmatch(rf"{email.language}-{email.intent}-\d\d", email.id), email.id


def test_every_intent_has_at_least_10_emails():
    counts = Counter(e.intent for e in EMAILS)
    assert set(counts) == set(quality.INTENTS)
    assert min(counts.values()) >= 10, counts


def test_both_languages_have_at_least_30_emails():
    counts = Counter(e.language for e in EMAILS)
    assert set(counts) == {"zh", "en"}
    assert min(counts.values()) >= 30, counts


def test_the_language_label_matches_the_text():
    for email in EMAILS:
        has_chinese = bool(CJK.search(email.text))
        assert has_chinese == (email.language == "zh"), email.id


def test_expected_has_exactly_the_scored_fields_as_lists_of_strings():
    for email in EMAILS:
        assert tuple(email.expected) == quality.SCORED_FIELDS, email.id
        for values in email.expected.values():
            assert isinstance(values, list), email.id
            assert all(isinstance(v, str) and v.strip() == v and v for v in values), email.id


def test_every_expected_value_occurs_verbatim():
    for email in EMAILS:
        for name, values in email.expected.items():
            for value in values:
                if name == "customer_name" and value == email.sender_name:
                    continue
                assert value in email.text, f"{email.id}: {name} {value!r}"


def test_bodies_are_2_to_15_lines_and_senders_have_addresses():
    for email in EMAILS:
        assert 2 <= len(email.body.splitlines()) <= 15, email.id
        assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", email.sender_address), email.id
        assert email.subject.strip() and email.sender_name.strip(), email.id


def test_the_set_has_the_values_the_extractors_must_handle():
    expected = Counter()
    for email in EMAILS:
        expected.update(name for name, values in email.expected.items() if values)
    # Every field appears in enough emails for its precision and recall to mean something.
    assert min(expected[name] for name in quality.SCORED_FIELDS) >= 10, expected


def test_selection_by_id_prefix_and_limit():
    assert [e.id for e in quality.select(EMAILS, "zh-complaint-01")] == ["zh-complaint-01"]
    chinese = quality.select(EMAILS, "zh-")
    assert chinese and all(e.language == "zh" for e in chinese)
    both = quality.select(EMAILS, "zh-other, en-other")
    assert {e.intent for e in both} == {"other"} and {e.language for e in both} == {"zh", "en"}
    assert len(quality.select(EMAILS, limit=5)) == 5
    # The file interleaves intents and languages, so a small --limit is still a mix.
    first = quality.select(EMAILS, limit=12)
    assert Counter((e.intent, e.language) for e in first) == Counter(
        (intent, language) for intent in quality.INTENTS for language in ("zh", "en")
    )


# --- Scoring -------------------------------------------------------------------------------


def test_values_match_ignores_case_and_whitespace_and_allows_containment():
    assert quality.values_match("acme crm", "Acme CRM")
    assert quality.values_match("Acme CRM 企业版", "Acme CRM")
    assert quality.values_match("SmartDesk3", "SmartDesk 3")
    assert quality.values_match("#58213", "58213")
    assert not quality.values_match("SmartDesk 2", "SmartDesk 3")
    assert not quality.values_match("", "Acme CRM")
    assert not quality.values_match("  ", "Acme CRM")


def test_a_perfect_outcome_scores_one():
    outcomes = [perfect(e) for e in EMAILS]
    report = quality.score_run(EMAILS, outcomes, [1.0] * len(EMAILS))
    assert report.emails == len(EMAILS)
    assert report.intent.rate == 1.0
    assert all(t.rate == 1.0 for t in report.intent_by_language.values())
    assert all(t.rate == 1.0 for t in report.intent_by_label.values())
    assert report.fields_total.precision.rate == 1.0
    assert report.fields_total.recall.rate == 1.0
    assert set(report.fields) == set(quality.SCORED_FIELDS)  # "problem" is not scored
    assert report.compliance.rate == 1.0
    assert report.confidence_right == pytest.approx(0.9)
    assert report.confidence_wrong is None


def test_a_wrong_intent_lowers_accuracy_and_shows_in_the_confusion_matrix():
    emails = [email_by_id("zh-complaint-01"), email_by_id("en-complaint-01")]
    outcomes = [perfect(emails[0]), perfect(emails[1])]
    outcomes[1].intent, outcomes[1].confidence = "technical_support", 0.4
    report = quality.score_run(emails, outcomes, [1.0, 1.0])
    assert report.intent.hits == 1 and report.intent.rate == 0.5
    assert report.intent_by_language["zh"].rate == 1.0
    assert report.intent_by_language["en"].rate == 0.0
    assert report.intent_by_label["complaint"].rate == 0.5
    assert report.intent_by_label["inquiry"].rate is None  # no inquiry in this run
    assert report.confusion["complaint"] == {"complaint": 1, "technical_support": 1}
    assert report.confidence_right == pytest.approx(0.9)
    assert report.confidence_wrong == pytest.approx(0.4)


def test_an_unknown_predicted_label_gets_its_own_column():
    email = email_by_id("en-other-02")
    outcome = FakeOutcome(intent="spam")
    report = quality.score_run([email], [outcome], [1.0])
    assert quality.confusion_columns(report)[-1] == "spam"
    assert "spam" in quality.text_report(report, fake_meta())


def test_an_extra_value_lowers_precision_but_not_recall():
    email = email_by_id("zh-complaint-01")
    outcome = perfect(email)
    outcome.fields["phone_numbers"].append({"value": "139-9999-0000"})
    scores = quality.score_fields(email.expected, outcome.fields)
    assert scores["phone_numbers"].precision == quality.Tally(1, 2)
    assert scores["phone_numbers"].recall == quality.Tally(1, 1)
    report = quality.score_run([email], [outcome], [1.0])
    assert report.fields_total.precision.rate < 1.0
    assert report.fields_total.recall.rate == 1.0


def test_a_missing_value_lowers_recall_but_not_precision():
    email = email_by_id("zh-complaint-01")  # three key dates
    outcome = perfect(email)
    outcome.fields["key_dates"] = outcome.fields["key_dates"][:1]
    scores = quality.score_fields(email.expected, outcome.fields)
    assert scores["key_dates"].recall == quality.Tally(1, 3)
    assert scores["key_dates"].precision == quality.Tally(1, 1)


def test_a_value_predicted_for_an_empty_field_is_a_false_positive():
    email = email_by_id("zh-inquiry-01")  # no order number
    assert email.expected["order_numbers"] == []
    fields = field_values(order_numbers=["AC-1234"])
    scores = quality.score_fields(email.expected, fields)
    assert scores["order_numbers"].precision == quality.Tally(0, 1)
    assert scores["order_numbers"].recall == quality.Tally(0, 0)
    assert scores["order_numbers"].recall.rate is None


def test_duplicates_count_once_and_unlisted_fields_are_not_scored():
    expected = {"product": ["SmartDesk 3"]}
    fields = field_values(
        product=["SmartDesk 3", "smartdesk  3", ""],
        problem=["screen flickers"],
        key_dates=["tomorrow"],
    )
    scores = quality.score_fields(expected, fields)
    assert set(scores) == {"product"}
    assert scores["product"] == quality.FieldScore(quality.Tally(1, 1), quality.Tally(1, 1))
    # Plain strings are accepted as values too.
    assert quality.score_fields(expected, {"product": ["SmartDesk 3"]}) == scores


def test_fields_are_micro_averaged_over_all_values():
    first, second = email_by_id("zh-complaint-01"), email_by_id("en-complaint-01")
    outcomes = [perfect(first), FakeOutcome(intent="complaint")]  # the second finds nothing
    report = quality.score_run([first, second], outcomes, [1.0, 1.0])
    values_first = sum(len(v) for v in first.expected.values())
    values_second = sum(len(v) for v in second.expected.values())
    assert report.fields_total.precision == quality.Tally(values_first, values_first)
    assert report.fields_total.recall == quality.Tally(values_first, values_first + values_second)


def test_format_flags_lower_compliance_and_every_flag_is_counted():
    emails = EMAILS[:4]
    outcomes = [perfect(e) for e in emails]
    outcomes[0].flags = ["too_long: over 200 characters"]
    outcomes[1].flags = ["unverified_field: product"]  # not a format flag
    outcomes[2].flags = ["placeholder_text", "language_mismatch: the email is Chinese"]
    report = quality.score_run(emails, outcomes, [1.0] * 4)
    assert report.compliance == quality.Tally(2, 4)
    assert report.flag_counts == {
        "too_long: over 200 characters": 1,
        "unverified_field: product": 1,
        "placeholder_text": 1,
        "language_mismatch: the email is Chinese": 1,
    }
    assert quality.format_flags(["empty_reply", "unverified_field: x"]) == ["empty_reply"]


def test_latency_percentiles_and_tokens_per_second():
    emails = EMAILS[:4]
    outcomes = [perfect(e) for e in emails]  # 10 completion tokens each
    report = quality.score_run(emails, outcomes, [1.0, 2.0, 3.0, 4.0])
    assert report.latency_mean == pytest.approx(2.5)
    assert report.latency_p50 == pytest.approx(2.5)
    assert report.latency_p95 == pytest.approx(3.85)
    assert report.tokens_per_second == pytest.approx(40 / 10.0)
    assert quality.percentile([], 50) is None
    assert quality.percentile([7.0], 95) == 7.0


def test_score_run_refuses_lists_of_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        quality.score_run(EMAILS[:2], [perfect(EMAILS[0])], [1.0, 1.0])


# --- Output and the script -----------------------------------------------------------------


def fake_meta() -> dict[str, Any]:
    return {
        "engine": "fake",
        "model": "/models/tiny.gguf",
        "device": "cpu",
        "batch_size": 1,
        "languages": "1 en",
    }


def test_the_reports_show_the_figures():
    emails = EMAILS[:12]
    outcomes = [perfect(e) for e in emails]
    outcomes[0].intent = "other"
    outcomes[1].flags = ["empty_reply"]
    report = quality.score_run(emails, outcomes, [0.5] * 12)
    text = quality.text_report(report, fake_meta())
    assert "Intent accuracy: 0.917 (11/12)" in text
    assert "Format compliance: 0.917 (11/12)" in text
    assert "1  empty_reply" in text
    assert "p95 0.50 s" in text
    markdown = quality.markdown_report(report, fake_meta())
    assert "| fake | `tiny.gguf` | cpu | 12 | 1 | 0.917 |" in markdown
    assert "| **all (micro)** | 1.000 (" in markdown
    assert "| inquiry | 1 | 0 | 0 | 0 | 0 | 1 | 0.500 (1/2) |" in markdown
    summary = quality.summary_dict(report)
    assert summary["intent_accuracy"] == {"hits": 11, "total": 12, "rate": 11 / 12}
    json.dumps(summary)


@pytest.fixture
def fake_engine(monkeypatch):
    """A perfect model that drafts instantly, behind the real EmailInput and DraftSettings."""
    import inference
    import inference.drafting
    import inference.registry

    by_subject = {e.subject: e for e in EMAILS}
    calls: list[int] = []

    def draft_replies(backend, emails, prompts, settings, rules=()):
        assert all(e.received == quality.RECEIVED for e in emails)
        assert settings.company_name == "Acme Cloud"
        calls.append(len(emails))
        return [perfect(by_subject[e.subject]) for e in emails]

    monkeypatch.setattr(inference.drafting, "draft_replies", draft_replies)
    monkeypatch.setattr(inference, "bundled_model_path", lambda: "/models/bundled.gguf")
    backend = types.SimpleNamespace(name="fake", device="cpu")
    monkeypatch.setattr(inference.registry, "load_backend", lambda *a, **k: backend)
    for name in ("REPLYHUB_ENGINE", "REPLYHUB_MODEL", "REPLYHUB_DEVICE", "REPLYHUB_COMPANY_NAME"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_the_script_drafts_in_batches_and_writes_its_results(fake_engine, tmp_path, capsys):
    out = tmp_path / "results.json"
    argv = ["--ids", "zh-,en-inquiry", "--limit", "5", "--batch-size", "2"]
    assert quality.main([*argv, "--json", str(out), "--markdown"]) == 0
    assert fake_engine == [2, 2, 1]
    captured = capsys.readouterr()
    assert "[2/5]" in captured.err and "[5/5]" in captured.err and "elapsed" in captured.err
    assert "model /models/bundled.gguf" in captured.out
    assert "5 emails (1 en, 4 zh), batch size 2" in captured.out
    assert "Intent accuracy: 1.000 (5/5)" in captured.out
    assert "| transformers | `bundled.gguf` |" in captured.out
    document = json.loads(out.read_text())
    assert document["summary"]["intent_accuracy"]["rate"] == 1.0
    assert [e["id"] for e in document["emails"]][:2] == ["zh-inquiry-01", "en-inquiry-01"]
    assert document["emails"][0]["fields"]["customer_name"]["predicted"] == ["王伟"]


def test_the_script_says_when_no_email_matches(fake_engine, capsys):
    assert quality.main(["--ids", "fr-"]) == 2
    assert "No email matches" in capsys.readouterr().err


def test_backend_options_are_those_the_worker_passes(monkeypatch):
    assert quality.backend_options("transformers", "cuda") == {"device": "cuda"}
    monkeypatch.setenv("REPLYHUB_OPENAI_BASE_URL", "http://10.0.0.5:8000/v1")
    options = quality.backend_options("openai", "auto")
    assert options["base_url"] == "http://10.0.0.5:8000/v1"
    assert set(options) == {"base_url", "api_key", "timeout"}
