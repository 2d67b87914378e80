"""The prompt templates admins edit (versioned) and the sampling rules that set how freely
the model writes.

Imported by drafts.models, which registers these models with Django (see its end).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils.translation import gettext_lazy

from drafts.models import INTENT_CHOICES
from inference.drafting import INTENTS, TEMPLATE_VARIABLES
from inference.sampling import SamplingRule as EngineSamplingRule


class PromptTemplate(models.Model):
    """The prompts that turn an email into a draft. Editing saves a new version."""

    # The list comes from the engine, which is what rejects unknown variables.
    HELP = (
        "Variables: "
        + ", ".join(f"{{{name}}}" for name in TEMPLATE_VARIABLES)
        + ". {intent}, {fields}, {customer_name} and {greeting} are filled after the "
        "analysis, so use them in the reply prompt."
    )

    name = models.CharField(max_length=100, default="default")
    version = models.PositiveIntegerField(default=1)
    intent = models.CharField(
        max_length=30,
        blank=True,
        choices=[("", gettext_lazy("Every intent (the default template)")), *INTENT_CHOICES],
        help_text="A template for one intent replaces the default's reply prompt for emails "
        "of that intent; its system and analysis prompts are not used (they run before the "
        "intent is known).",
    )
    is_active = models.BooleanField(default=True)
    system_prompt = models.TextField(help_text=HELP)
    analysis_prompt = models.TextField(help_text=HELP)
    reply_prompt = models.TextField(help_text=HELP)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="unique_template_version")
        ]
        ordering = ["name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @classmethod
    def active(cls) -> PromptTemplate:
        """The default template new drafts use: the newest active version."""
        template = (
            cls.objects.filter(is_active=True, intent="").order_by("-created_at", "-id").first()
        )
        if template is None:
            raise PromptTemplate.DoesNotExist("No active prompt template; add one in the admin.")
        return template

    @classmethod
    def active_by_intent(cls) -> dict[str, PromptTemplate]:
        """The newest active template of each intent that has its own."""
        chosen: dict[str, PromptTemplate] = {}
        for template in (
            cls.objects.filter(is_active=True).exclude(intent="").order_by("-created_at", "-id")
        ):
            chosen.setdefault(template.intent, template)
        return chosen

    @transaction.atomic
    def activate(self) -> None:
        """Make this version the one in use (a rollback when it is older than the current)."""
        PromptTemplate.objects.filter(name=self.name).exclude(pk=self.pk).update(is_active=False)
        PromptTemplate.objects.filter(pk=self.pk).update(is_active=True)
        self.is_active = True

    @transaction.atomic
    def save_as_new_version(self, user: object | None = None) -> PromptTemplate:
        """Store these texts as the next version of this template and make it active."""
        latest = PromptTemplate.objects.filter(name=self.name).aggregate(v=models.Max("version"))
        PromptTemplate.objects.filter(name=self.name).update(is_active=False)
        self.pk = None
        self._state.adding = True
        self.version = (latest["v"] or 0) + 1
        self.is_active = True
        self.created_by = user if getattr(user, "pk", None) else None
        self.save()
        return self


def _words(text: str) -> tuple[str, ...]:
    """Items of a list typed one per line or separated by commas."""
    return tuple(
        w.strip() for w in text.replace("，", ",").replace("\n", ",").split(",") if w.strip()
    )


class SamplingRule(models.Model):
    """How freely the model writes for drafts of some intents or wording.

    Rules are tried in ``position`` order and the first that matches decides the
    temperature and top-p: sober for invoices and contracts, freer for open questions.
    """

    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(
        default=0, help_text="Rules are tried from the lowest position; the first match wins."
    )
    intents = models.CharField(
        max_length=200,
        blank=True,
        help_text="Intent keys separated by commas ("
        + ", ".join(INTENTS)
        + "). Empty matches every intent.",
    )
    keywords = models.TextField(
        blank=True,
        help_text="Words or phrases, one per line or separated by commas; the rule applies "
        "when the subject or body contains any of them. Empty matches every email.",
    )
    temperature = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(2)])
    top_p = models.FloatField(
        default=0.9, validators=[MinValueValidator(0.05), MaxValueValidator(1)]
    )
    max_new_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(16), MaxValueValidator(4096)],
        help_text="Longest reply, in tokens, for emails this rule matches; empty: the "
        "REPLYHUB_MAX_NEW_TOKENS setting.",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.name} (temperature {self.temperature})"

    def clean(self) -> None:
        unknown = set(_words(self.intents)) - set(INTENTS)
        if unknown:
            raise ValidationError(
                {
                    "intents": f"Unknown intent(s): {', '.join(sorted(unknown))}. "
                    f"Use: {', '.join(INTENTS)}."
                }
            )

    def as_engine_rule(self) -> EngineSamplingRule:
        return EngineSamplingRule(
            name=self.name,
            temperature=self.temperature,
            top_p=self.top_p,
            intents=_words(self.intents),
            keywords=_words(self.keywords),
            max_new_tokens=self.max_new_tokens,
        )

    @classmethod
    def active(cls) -> tuple[EngineSamplingRule, ...]:
        """The enabled rules, in the order they are tried."""
        return tuple(rule.as_engine_rule() for rule in cls.objects.filter(enabled=True))
