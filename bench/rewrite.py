"""Does the model rewrite as asked? A reviewer's "shorter", measured on the labelled set.

    .venv/bin/python bench/rewrite.py [--limit 12] [--instruction shorter] [--markdown]

For each selected email of ``bench/quality_set.jsonl`` the configured model (the bundled one
by default; same environment variables as bench/quality.py) writes a draft; then, from that
draft, it writes the reply twice more: once asked the instruction, with the first draft's
seed (the reply as its earlier answer, the request as the next turn: what Regenerate with
"What should change?" does), and once regenerated plainly with another seed, as the
control (a plain Regenerate: another draw of the same prompt; with the same seed it would
be the first draft again). Reported: the median
length of each against the first draft, the share of rewrites shorter than the first
draft (and of controls), and the format compliance of each (no empty reply, placeholder,
wrong language or over-long reply). An instruction other than "shorter" still gets the
compliance figures; the length figures only say something for a length request.

Plain Python, as bench/quality.py: nothing here imports Django.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import quality
from quality import RECEIVED, REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=12, help="emails (one per intent/language)")
    parser.add_argument("--instruction", default="shorter")
    parser.add_argument("--engine", default=os.getenv("REPLYHUB_ENGINE", "transformers"))
    parser.add_argument("--model", default=os.getenv("REPLYHUB_MODEL", ""))
    parser.add_argument("--device", default=os.getenv("REPLYHUB_DEVICE", "auto"))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from inference import bundled_model_path
    from inference.drafting import DraftSettings, EmailInput, Revision, draft_replies
    from inference.prompts import DEFAULT_PROMPTS
    from inference.registry import load_backend

    emails = quality.select(quality.load_quality_set(), "", args.limit)
    model = args.model or bundled_model_path()
    settings = DraftSettings(
        company_name="Acme Cloud",
        signoff="Acme Cloud Support Team",
        max_new_tokens=int(os.getenv("REPLYHUB_MAX_NEW_TOKENS", "200")),
        seed=7,
    )
    backend = load_backend(args.engine, model, **quality.backend_options(args.engine, args.device))
    rows = []
    began = time.perf_counter()
    for number, e in enumerate(emails, 1):
        email = EmailInput(e.subject, e.sender_name, e.sender_address, e.body, received=RECEIVED)
        [first] = draft_replies(backend, [email], DEFAULT_PROMPTS, settings)
        [asked] = draft_replies(
            backend, [email], DEFAULT_PROMPTS, settings,
            revisions=[Revision(first.reply, args.instruction)],
        )  # fmt: skip
        redraw = dataclasses.replace(settings, seed=settings.seed + 1)
        [control] = draft_replies(backend, [email], DEFAULT_PROMPTS, redraw)
        rows.append((e, first, asked, control))
        print(
            f"  {number}/{len(emails)} {e.id}: {len(first.reply)} -> asked {len(asked.reply)}, "
            f"control {len(control.reply)} characters",
            file=sys.stderr,
            flush=True,
        )
    seconds = time.perf_counter() - began

    def ratio(which: int) -> float:
        return statistics.median(len(r[which].reply) / max(1, len(r[1].reply)) for r in rows)

    def shorter(which: int) -> float:
        return sum(len(r[which].reply) < len(r[1].reply) for r in rows) / len(rows)

    def compliant(which: int) -> float:
        return sum(not quality.format_flags(r[which].flags) for r in rows) / len(rows)

    print(f"\nModel: {model} ({args.engine}); {len(rows)} emails; {seconds:.0f} s in all")
    print(f"Instruction: {args.instruction!r}")
    table = [
        ("asked", ratio(2), shorter(2), compliant(2)),
        ("control (plain regenerate)", ratio(3), shorter(3), compliant(3)),
        ("first draft", 1.0, 0.0, compliant(1)),
    ]
    if args.markdown:
        print("\n| Reply | median length vs first draft | shorter than first | format ok |")
        print("| --- | ---: | ---: | ---: |")
        for name, r, s, c in table:
            print(f"| {name} | {r:.2f} | {s:.0%} | {c:.0%} |")
    else:
        for name, r, s, c in table:
            print(f"{name:28} length x{r:.2f}  shorter {s:.0%}  format ok {c:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
