"""Sampling chosen by rules: sober wording for money and contracts, freer for open questions.

The rules are data. ReplyHub stores them in the database (editable in the admin) and
passes them in; ``DEFAULT_RULES`` seeds that table and serves the benchmarks. The first
rule that matches a draft decides its temperature and top-p.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from inference.types import SamplingParams


@dataclass(frozen=True)
class SamplingRule:
    """Sampling for emails of some intents and/or containing some keywords.

    An empty ``intents`` or ``keywords`` matches everything, so a rule with neither is a
    catch-all. Keywords match case-insensitively anywhere in the subject or body.
    """

    name: str
    temperature: float
    top_p: float = 0.9
    intents: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # None: the settings' limit

    def matches(self, intent: str, text: str) -> bool:
        """True when this rule applies to an email of ``intent`` with ``text``."""
        if self.intents and intent not in self.intents:
            return False
        folded = text.casefold()
        return not self.keywords or any(k.casefold() in folded for k in self.keywords if k)


DEFAULT_RULES: tuple[SamplingRule, ...] = (
    SamplingRule(
        "invoices, contracts and payments",
        temperature=0.2,
        top_p=0.8,
        keywords=(
            "invoice", "contract", "payment", "refund", "billing", "quotation", "price",
            "发票", "合同", "付款", "支付", "退款", "账单", "报价", "价格", "费用",
        ),
    ),
    SamplingRule(
        "complaints and technical problems",
        temperature=0.3,
        top_p=0.85,
        intents=("complaint", "technical_support"),
    ),
    SamplingRule(
        "open questions and suggestions",
        temperature=0.7,
        top_p=0.9,
        keywords=(
            "suggest", "idea", "wonder", "how ", "what ", "why ", "could you", "?",
            "建议", "想法", "如何", "怎么", "为什么", "能否", "是否", "？",
        ),
    ),
)  # fmt: skip

DEFAULT_TEMPERATURE = 0.5


def choose_sampling(
    rules: tuple[SamplingRule, ...], intent: str, text: str, base: SamplingParams
) -> tuple[SamplingParams, str]:
    """``base`` with the temperature, top-p and (if it sets one) the length limit of the
    first matching rule, and its name.

    Without a matching rule the base settings stand and the name is "default".
    """
    for rule in rules:
        if rule.matches(intent, text):
            chosen = replace(base, temperature=rule.temperature, top_p=rule.top_p)
            if rule.max_new_tokens:
                chosen = replace(chosen, max_new_tokens=rule.max_new_tokens)
            return chosen, rule.name
    return base, "default"
