"""Quality benchmark: how well the configured model analyses and answers customer email.

    .venv/bin/python bench/quality.py [--limit N] [--batch-size N] [--json PATH] [--markdown]

Drafts a reply to every email of the labelled set ``bench/quality_set.jsonl`` (Chinese and
English, six intents, with the fields a reader would pick out) through the same engine API
the app uses, and reports:

- intent accuracy overall, per language and per intent, a confusion matrix, and the mean
  confidence when the intent was right and when it was wrong;
- per-field precision and recall (micro-averaged totals too): a predicted value matches an
  expected one when, lowercased and without whitespace, one contains the other;
- format compliance: the share of drafts without a format flag, and every flag's count;
- latency per draft (wall time of a batch divided by its size: mean, p50, p95) and
  completion tokens per second of wall time.

The engine, model and device come from the same environment variables as the app
(``REPLYHUB_ENGINE``, ``REPLYHUB_MODEL``, ``REPLYHUB_DEVICE``, and ``REPLYHUB_OPENAI_*`` for
an inference server), the bundled model by default; the options override them. Every email
counts as received on RECEIVED, so relative dates resolve the same way in every run.
``--ids zh-,en-complaint`` picks emails by id prefix and ``--limit 12`` takes one email of
each intent per language (the set is interleaved). Progress goes to stderr, one line a batch.

Plain Python: nothing here imports Django, and the engine is imported only to run the model,
so the scoring functions can be tested without it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
QUALITY_SET = Path(__file__).resolve().parent / "quality_set.jsonl"

INTENTS = ("inquiry", "complaint", "partnership", "technical_support", "demo_booking", "other")
LANGUAGES = ("zh", "en")
# The fields with expected values in the set; "problem" is free text and is not scored.
SCORED_FIELDS = (
    "customer_name",
    "product",
    "key_dates",
    "order_numbers",
    "phone_numbers",
    "email_addresses",
)
# Flags that say the reply breaks the format rules (others, e.g. unverified_field, do not).
FORMAT_FLAGS = ("empty_reply", "placeholder_text", "language_mismatch", "too_long")
# The day every email counts as received: relative dates ("下周二", "next Tuesday, December 8")
# then mean the same day in every run. The set's dates are written around it.
RECEIVED = dt.date(2026, 12, 1)
# Short column names, so that the confusion matrix fits a terminal.
SHORT = {"technical_support": "tech", "demo_booking": "demo", "partnership": "partner"}


# --- The labelled set ----------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledEmail:
    """One email of the quality set with its intent and the field values it contains."""

    id: str
    language: str
    subject: str
    sender_name: str
    sender_address: str
    body: str
    intent: str
    expected: dict[str, list[str]]

    @property
    def text(self) -> str:
        """Subject and body, the text every expected value occurs in."""
        return f"{self.subject}\n{self.body}"


def load_quality_set(path: Path = QUALITY_SET) -> list[LabelledEmail]:
    """The labelled emails of ``path`` (JSON Lines), in file order."""
    with path.open(encoding="utf-8") as lines:
        return [LabelledEmail(**json.loads(line)) for line in lines if line.strip()]


def select(emails: Sequence[LabelledEmail], ids: str = "", limit: int = 0) -> list[LabelledEmail]:
    """The first ``limit`` (0: all) emails whose id starts with one of the comma-separated ``ids``.

    An id matches itself, so "zh-complaint-01" picks one email and "zh-" all Chinese ones.
    """
    wanted = [part.strip() for part in ids.split(",") if part.strip()]
    chosen = [e for e in emails if not wanted or any(e.id.startswith(w) for w in wanted)]
    return chosen[:limit] if limit > 0 else chosen


# --- Scoring -------------------------------------------------------------------------------


class Outcome(Protocol):
    """The parts of ``inference.drafting.DraftOutcome`` that are scored."""

    intent: str
    confidence: float
    fields: dict[str, list[dict[str, Any]]]
    flags: list[str]
    completion_tokens: int


@dataclass(frozen=True)
class Tally:
    """``hits`` out of ``total``; the rate is None when there was nothing to count."""

    hits: int = 0
    total: int = 0

    @property
    def rate(self) -> float | None:
        """hits / total, or None when total is 0."""
        return self.hits / self.total if self.total else None

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.hits + other.hits, self.total + other.total)


@dataclass(frozen=True)
class FieldScore:
    """Counts for one field: predicted values that match, expected values that were found."""

    precision: Tally = Tally()
    recall: Tally = Tally()

    def __add__(self, other: FieldScore) -> FieldScore:
        return FieldScore(self.precision + other.precision, self.recall + other.recall)


def normalize(value: str) -> str:
    """The value lowercased and without whitespace, as values are compared."""
    return "".join(str(value).lower().split())


def values_match(predicted: str, expected: str) -> bool:
    """True when one normalized value contains the other (neither may be empty)."""
    a, b = normalize(predicted), normalize(expected)
    return bool(a and b) and (a in b or b in a)


def predicted_values(fields: dict[str, list[Any]], name: str) -> list[str]:
    """The distinct non-empty values predicted for ``name`` (dicts with "value", or strings)."""
    values: dict[str, str] = {}
    for item in fields.get(name) or []:
        value = item.get("value") if isinstance(item, dict) else item
        if value is not None and normalize(value):
            # The pattern and the model may both find a value; it counts once.
            values.setdefault(normalize(value), str(value))
    return list(values.values())


def score_fields(
    expected: dict[str, list[str]], fields: dict[str, list[Any]]
) -> dict[str, FieldScore]:
    """Precision and recall counts per scored field of one email.

    Only fields listed in ``expected`` count. A predicted value is precise when it matches
    some expected value; an expected value is recalled when some predicted value matches it.
    """
    scores = {}
    for name in SCORED_FIELDS:
        if name not in expected:
            continue
        wanted = [v for v in expected[name] if normalize(v)]
        got = predicted_values(fields, name)
        precise = sum(1 for p in got if any(values_match(p, e) for e in wanted))
        recalled = sum(1 for e in wanted if any(values_match(p, e) for p in got))
        scores[name] = FieldScore(Tally(precise, len(got)), Tally(recalled, len(wanted)))
    return scores


def format_flags(flags: Iterable[str]) -> list[str]:
    """The flags that say the reply breaks a format rule."""
    return [flag for flag in flags if flag.startswith(FORMAT_FLAGS)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean, or None for no values."""
    return sum(values) / len(values) if values else None


@dataclass
class QualityReport:
    """Every figure the benchmark reports, computed by ``score_run``."""

    emails: int = 0
    intent: Tally = Tally()
    intent_by_language: dict[str, Tally] = field(default_factory=dict)
    intent_by_label: dict[str, Tally] = field(default_factory=dict)
    confusion: dict[str, Counter[str]] = field(default_factory=dict)
    confidence_right: float | None = None
    confidence_wrong: float | None = None
    fields: dict[str, FieldScore] = field(default_factory=dict)
    fields_total: FieldScore = FieldScore()
    compliance: Tally = Tally()
    flag_counts: Counter[str] = field(default_factory=Counter)
    latency_mean: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    tokens_per_second: float | None = None


def score_run(
    emails: Sequence[LabelledEmail], outcomes: Sequence[Outcome], latencies: Sequence[float]
) -> QualityReport:
    """Score the outcomes of ``emails`` (same order); ``latencies`` are seconds per draft."""
    if not len(emails) == len(outcomes) == len(latencies):
        raise ValueError("emails, outcomes and latencies must have the same length")
    report = QualityReport(emails=len(emails))
    report.intent_by_language = {language: Tally() for language in LANGUAGES}
    report.intent_by_label = {intent: Tally() for intent in INTENTS}
    report.confusion = {intent: Counter() for intent in INTENTS}
    right, wrong = [], []
    for email, outcome in zip(emails, outcomes, strict=True):
        hit = Tally(int(outcome.intent == email.intent), 1)
        report.intent += hit
        by_language, by_label = report.intent_by_language, report.intent_by_label
        by_language[email.language] = by_language.get(email.language, Tally()) + hit
        by_label[email.intent] = by_label.get(email.intent, Tally()) + hit
        report.confusion.setdefault(email.intent, Counter())[outcome.intent] += 1
        (right if hit.hits else wrong).append(outcome.confidence)
        for name, score in score_fields(email.expected, outcome.fields).items():
            report.fields[name] = report.fields.get(name, FieldScore()) + score
            report.fields_total += score
        report.compliance += Tally(int(not format_flags(outcome.flags)), 1)
        report.flag_counts.update(outcome.flags)
    report.confidence_right, report.confidence_wrong = mean(right), mean(wrong)
    report.latency_mean = mean(latencies)
    report.latency_p50 = percentile(latencies, 50)
    report.latency_p95 = percentile(latencies, 95)
    seconds = sum(latencies)
    tokens = sum(outcome.completion_tokens for outcome in outcomes)
    report.tokens_per_second = tokens / seconds if seconds > 0 else None
    return report


# --- Output --------------------------------------------------------------------------------


def rate(tally: Tally, digits: int = 3) -> str:
    """The rate with its counts, "0.875 (7/8)"; "- (0/0)" when there was nothing to count."""
    value = "-" if tally.rate is None else f"{tally.rate:.{digits}f}"
    return f"{value} ({tally.hits}/{tally.total})"


def number(value: float | None, digits: int = 2) -> str:
    """The value with ``digits`` decimals, or "-" for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def confusion_columns(report: QualityReport) -> list[str]:
    """The intents in their usual order, then any other label the model predicted."""
    predicted = {label for row in report.confusion.values() for label in row}
    return list(INTENTS) + sorted(predicted - set(INTENTS))


def text_report(report: QualityReport, meta: dict[str, Any]) -> str:
    """The report as plain text, for reading in a terminal."""
    lines = [
        f"Engine {meta['engine']}, model {meta['model']}, device {meta['device']}",
        f"{report.emails} emails ({meta['languages']}), batch size {meta['batch_size']}",
        "",
        f"Intent accuracy: {rate(report.intent)}",
    ]
    lines += [f"  {k:<18} {rate(v)}" for k, v in report.intent_by_language.items() if v.total]
    lines += [f"  {k:<18} {rate(v)}" for k, v in report.intent_by_label.items() if v.total]
    lines.append(
        f"  mean confidence: right {number(report.confidence_right, 3)}, "
        f"wrong {number(report.confidence_wrong, 3)}"
    )
    columns = confusion_columns(report)
    width = max(len(label) for label in report.confusion) + 1
    lines += ["", "Confusion (rows: expected, columns: predicted):"]
    lines.append(" " * width + "".join(f"{SHORT.get(c, c)[:9]:>10}" for c in columns))
    for label, row in report.confusion.items():
        lines.append(f"{label:<{width}}" + "".join(f"{row[c]:>10}" for c in columns))
    lines += ["", f"{'Field':<18} {'precision':<18} recall"]
    for name, score in [*report.fields.items(), ("all (micro)", report.fields_total)]:
        lines.append(f"{name:<18} {rate(score.precision):<18} {rate(score.recall)}")
    lines += ["", f"Format compliance: {rate(report.compliance)}"]
    lines += [f"  {count:>4}  {flag}" for flag, count in report.flag_counts.most_common()]
    lines += [
        "",
        f"Latency per draft: mean {number(report.latency_mean)} s, "
        f"p50 {number(report.latency_p50)} s, p95 {number(report.latency_p95)} s; "
        f"{number(report.tokens_per_second, 1)} completion tokens/s",
    ]
    return "\n".join(lines)


def markdown_report(report: QualityReport, meta: dict[str, Any]) -> str:
    """Markdown tables for docs/benchmarks.md: the summary, intents and fields."""
    fields_total = report.fields_total
    summary = [
        "| engine | model | device | emails | batch | intent acc. | zh | en "
        "| field P | field R | format ok | s/draft mean | p50 | p95 | tokens/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(
            [
                meta["engine"],
                f"`{Path(meta['model']).name}`",
                meta["device"],
                str(report.emails),
                str(meta["batch_size"]),
                number(report.intent.rate, 3),
                number(report.intent_by_language.get("zh", Tally()).rate, 3),
                number(report.intent_by_language.get("en", Tally()).rate, 3),
                number(fields_total.precision.rate, 3),
                number(fields_total.recall.rate, 3),
                number(report.compliance.rate, 3),
                number(report.latency_mean),
                number(report.latency_p50),
                number(report.latency_p95),
                number(report.tokens_per_second, 1),
            ]
        )
        + " |",
    ]
    columns = confusion_columns(report)
    intents = [
        "| expected \\ predicted | " + " | ".join(columns) + " | accuracy |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for label, row in report.confusion.items():
        cells = [str(row[c]) for c in columns]
        accuracy = report.intent_by_label.get(label, Tally())
        intents.append(f"| {label} | " + " | ".join(cells) + f" | {rate(accuracy)} |")
    fields = ["| field | precision | recall |", "|---|---:|---:|"]
    for name, score in [*report.fields.items(), ("**all (micro)**", fields_total)]:
        fields.append(f"| {name} | {rate(score.precision)} | {rate(score.recall)} |")
    return "\n\n".join("\n".join(table) for table in (summary, intents, fields))


def email_results(
    emails: Sequence[LabelledEmail], outcomes: Sequence[Any], latencies: Sequence[float]
) -> list[dict[str, Any]]:
    """Per-email results for --json: the labels, the outcome and the field scores."""
    results = []
    for email, outcome, latency in zip(emails, outcomes, latencies, strict=True):
        scores = score_fields(email.expected, outcome.fields)
        results.append(
            {
                "id": email.id,
                "language": email.language,
                "intent": {
                    "expected": email.intent,
                    "predicted": outcome.intent,
                    "confidence": outcome.confidence,
                    "scores": getattr(outcome, "intent_scores", {}),
                },
                "fields": {
                    name: {
                        "expected": email.expected[name],
                        "predicted": predicted_values(outcome.fields, name),
                        "precision": [score.precision.hits, score.precision.total],
                        "recall": [score.recall.hits, score.recall.total],
                    }
                    for name, score in scores.items()
                },
                "all_fields": outcome.fields,
                "flags": outcome.flags,
                "format_ok": not format_flags(outcome.flags),
                "reply": getattr(outcome, "reply", ""),
                "raw_reply": getattr(outcome, "raw_reply", ""),
                "language_detected": getattr(outcome, "language", ""),
                "finish_reason": getattr(outcome, "finish_reason", ""),
                "prompt_tokens": getattr(outcome, "prompt_tokens", 0),
                "completion_tokens": outcome.completion_tokens,
                "timings": getattr(outcome, "timings", {}),
                "latency_s": round(latency, 3),
            }
        )
    return results


def summary_dict(report: QualityReport) -> dict[str, Any]:
    """The report as plain JSON values (rates included)."""

    def tally(t: Tally) -> dict[str, Any]:
        return {"hits": t.hits, "total": t.total, "rate": t.rate}

    def field_score(s: FieldScore) -> dict[str, Any]:
        return {"precision": tally(s.precision), "recall": tally(s.recall)}

    return {
        "emails": report.emails,
        "intent_accuracy": tally(report.intent),
        "intent_accuracy_by_language": {k: tally(v) for k, v in report.intent_by_language.items()},
        "intent_accuracy_by_intent": {k: tally(v) for k, v in report.intent_by_label.items()},
        "confusion": {k: dict(v) for k, v in report.confusion.items()},
        "mean_confidence_right": report.confidence_right,
        "mean_confidence_wrong": report.confidence_wrong,
        "fields": {k: field_score(v) for k, v in report.fields.items()},
        "fields_micro": field_score(report.fields_total),
        "format_compliance": tally(report.compliance),
        "flag_counts": dict(report.flag_counts.most_common()),
        "latency_s": {
            "mean": report.latency_mean,
            "p50": report.latency_p50,
            "p95": report.latency_p95,
        },
        "completion_tokens_per_s": report.tokens_per_second,
    }


# --- Running the model ---------------------------------------------------------------------


def draft_all(
    backend: Any,
    emails: Sequence[LabelledEmail],
    settings: Any,
    batch_size: int,
    show: Callable[[str], None],
) -> tuple[list[Any], list[float]]:
    """Draft every email in batches; the outcomes and each draft's share of its batch's time."""
    from inference.drafting import EmailInput, draft_replies
    from inference.prompts import DEFAULT_PROMPTS
    from inference.sampling import DEFAULT_RULES

    outcomes: list[Any] = []
    latencies: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(emails), batch_size):
        batch = emails[start : start + batch_size]
        inputs = [
            EmailInput(e.subject, e.sender_name, e.sender_address, e.body, received=RECEIVED)
            for e in batch
        ]
        began = time.perf_counter()
        outcomes += draft_replies(backend, inputs, DEFAULT_PROMPTS, settings, rules=DEFAULT_RULES)
        seconds = time.perf_counter() - began
        latencies += [seconds / len(batch)] * len(batch)
        show(
            f"[{len(outcomes)}/{len(emails)}] batch {seconds:.1f} s "
            f"({seconds / len(batch):.2f} s/draft), elapsed {time.perf_counter() - started:.1f} s"
        )
    return outcomes, latencies


def backend_options(engine: str, device: str) -> dict[str, Any]:
    """The backend's options from the app's environment variables, as the worker passes them."""
    if engine == "openai":
        return {
            "base_url": os.getenv("REPLYHUB_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
            "api_key": os.getenv("REPLYHUB_OPENAI_API_KEY", ""),
            "timeout": int(os.getenv("REPLYHUB_OPENAI_TIMEOUT", "120")),
        }
    return {"device": device}


def machine(backend: Any, engine: str, requested: str) -> str:
    """The device the backend runs on, as precisely as the engine tells."""
    if engine == "openai":
        return f"server {backend_options(engine, requested)['base_url']}"
    device = str(getattr(backend, "device", "") or requested)
    torch = sys.modules.get("torch")  # only when the engine already imported it
    if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
        device += f" ({torch.cuda.get_device_name(device)})"
    elif device.startswith("cpu"):
        device += f" ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return device


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; defaults come from the app's environment variables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--engine", default=os.getenv("REPLYHUB_ENGINE", "transformers"), help="engine name")
    add("--model", default=os.getenv("REPLYHUB_MODEL", ""), help="default: the bundled model")
    add("--device", default=os.getenv("REPLYHUB_DEVICE", "auto"), help="auto, cpu, cuda, ...")
    add("--limit", type=int, default=0, help="score only the first N emails (after --ids)")
    add("--batch-size", type=int, default=1, help="emails drafted together (default 1)")
    add("--ids", default="", help="comma-separated ids or id prefixes, e.g. zh-,en-complaint")
    add("--json", type=Path, help="write the summary and per-email results to this file")
    add("--markdown", action="store_true", help="also print Markdown tables")
    add("--set", type=Path, default=QUALITY_SET, help="the labelled set (JSON Lines)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Load the model, draft every selected email, score and report; see the docstring."""
    args = parse_args(argv)
    if str(REPO) not in sys.path:  # run as a script, sys.path[0] is bench/
        sys.path.insert(0, str(REPO))
    from inference import bundled_model_path
    from inference.drafting import DraftSettings
    from inference.registry import load_backend

    emails = select(load_quality_set(args.set), args.ids, args.limit)
    if not emails:
        print(f"No email matches --ids {args.ids!r}", file=sys.stderr)
        return 2
    model = args.model or bundled_model_path()
    if not model:
        print("No model: set REPLYHUB_MODEL or --model, or run `make install`.", file=sys.stderr)
        return 2
    settings = DraftSettings(
        company_name=os.getenv("REPLYHUB_COMPANY_NAME", "Acme Cloud"),
        signoff=os.getenv("REPLYHUB_SIGNOFF", "Acme Cloud Support Team"),
        max_new_tokens=int(os.getenv("REPLYHUB_MAX_NEW_TOKENS", "200")),
        analysis_max_new_tokens=int(os.getenv("REPLYHUB_ANALYSIS_MAX_NEW_TOKENS", "96")),
    )

    def show(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    show(f"loading {args.engine} model {model}")
    began = time.perf_counter()
    backend = load_backend(args.engine, model, **backend_options(args.engine, args.device))
    load_seconds = time.perf_counter() - began
    show(f"loaded in {load_seconds:.1f} s; drafting {len(emails)} emails")
    outcomes, latencies = draft_all(backend, emails, settings, args.batch_size, show)

    report = score_run(emails, outcomes, latencies)
    counts = Counter(e.language for e in emails)
    meta = {
        "engine": args.engine,
        "model": model,
        "device": machine(backend, args.engine, args.device),
        "batch_size": args.batch_size,
        "languages": ", ".join(f"{counts[k]} {k}" for k in sorted(counts)),
        "max_new_tokens": settings.max_new_tokens,
        "analysis_max_new_tokens": settings.analysis_max_new_tokens,
        "load_s": round(load_seconds, 1),
        "received": RECEIVED.isoformat(),
        "python": platform.python_version(),
    }
    print(text_report(report, meta))
    if args.markdown:
        print()
        print(markdown_report(report, meta))
    if args.json:
        results = email_results(emails, outcomes, latencies)
        document = {"meta": meta, "summary": summary_dict(report), "emails": results}
        args.json.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        show(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
