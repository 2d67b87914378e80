"""ReplyHub's domain: mailboxes, threads, messages, drafts and what reviewers did.

State changes are methods on the models; every transition that can race is a
conditional UPDATE that checks exactly one row changed.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext_lazy

from drafts import search
from drafts.business_hours import (
    WorkingCalendar,
    parse_weekdays,
    validate_time_zone,
    weekday_runs,
)
from inference.drafting import INTENTS, TEMPLATE_VARIABLES
from inference.sampling import SamplingRule as EngineSamplingRule

ADMIN_GROUP = "ReplyHub admins"
# The intents as choices, labelled in both languages ("complaint · 投诉").
INTENT_CHOICES = [(key, f"{english} · {chinese}") for key, (english, chinese) in INTENTS.items()]


class StaffProfile(models.Model):
    """A staff member's role and interface language."""

    REVIEWER, SUPERVISOR, ADMIN = "reviewer", "supervisor", "admin"
    ROLES = [
        (REVIEWER, gettext_lazy("Reviewer: drafts of the mailboxes assigned to them")),
        (SUPERVISOR, gettext_lazy("Supervisor: all mailboxes, and the stats")),
        (ADMIN, gettext_lazy("Admin: also templates, mailboxes and users")),
    ]

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=20, choices=ROLES, default=REVIEWER)
    language = models.CharField(max_length=10, choices=settings.LANGUAGES, default="en")
    away = models.BooleanField(
        default=False,
        help_text="Away (holiday, leave): gets no new drafts where a mailbox shares them out.",
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"

    def save(self, *args: object, **kwargs: object) -> None:
        super().save(*args, **kwargs)
        self.sync_admin_access()

    @staticmethod
    def role_of(user: object) -> str:
        """The user's role; superusers are admins, users without a profile reviewers."""
        if getattr(user, "is_superuser", False):
            return StaffProfile.ADMIN
        profile = StaffProfile.objects.filter(user=user).only("role").first()
        return profile.role if profile else StaffProfile.REVIEWER

    def sync_admin_access(self) -> None:
        """The role decides who enters the Django admin: admins do, with the admin group's
        permissions (templates, mailboxes, sampling rules, users); others do not.
        Superusers keep what they have."""
        from drafts.access import admin_group

        user = self.user
        if user.is_superuser:
            return
        is_admin = self.role == self.ADMIN
        if user.is_staff != is_admin:
            user.is_staff = is_admin
            user.save(update_fields=["is_staff"])
        if is_admin:
            user.groups.add(admin_group())
        else:
            user.groups.remove(*user.groups.filter(name=ADMIN_GROUP))


class Mailbox(models.Model):
    """A support address whose mail ReplyHub drafts replies for."""

    name = models.CharField(max_length=100, unique=True)
    address = models.EmailField(help_text="Replies are sent from this address.")
    display_name = models.CharField(max_length=100, blank=True)
    company_name = models.CharField(max_length=100, blank=True)
    signoff = models.CharField(max_length=200, blank=True, help_text="Last line of every reply.")
    contact_line = models.CharField(
        max_length=300,
        blank=True,
        help_text="Printed under the sign-off, e.g. 客服热线 400-820-1234 · www.acme.example",
    )
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="review_mailboxes",
        help_text="Reviewers who see and answer this mailbox's mail (supervisors see all).",
    )
    imap_host = models.CharField(max_length=200, blank=True, help_text="Empty: no IMAP fetching.")
    imap_port = models.PositiveIntegerField(default=993)
    imap_security = models.CharField(
        max_length=10,
        choices=[
            ("ssl", "SSL/TLS"),
            ("starttls", "STARTTLS"),
            ("none", gettext_lazy("None (local only)")),
        ],
        default="ssl",
    )
    imap_user = models.CharField(max_length=200, blank=True)
    imap_password_env = models.CharField(
        max_length=100,
        default="IMAP_PASSWORD",
        help_text="Name of the environment variable that holds the password; "
        "the password itself is never stored or shown.",
    )
    imap_folder = models.CharField(max_length=200, default="INBOX")
    imap_mark_seen = models.BooleanField(
        default=True, help_text="Set \\Seen on the server once a message is stored."
    )
    imap_sent_folder = models.CharField(
        max_length=200,
        blank=True,
        help_text="Also keep each sent reply in this IMAP folder (e.g. Sent), so the thread "
        "reads complete in the team's mail client. Empty: don't.",
    )
    html_replies = models.BooleanField(
        default=False,
        help_text="Send replies with an HTML version beside the plain text (same words).",
    )
    send_limit_per_minute = models.PositiveIntegerField(
        default=0, help_text="Most replies sent from this mailbox per minute; 0: no limit."
    )
    reply_within_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Reply target: each email is answered within this many hours of its arrival "
        "(round the clock, or working hours only: see below). The queue shows what is due "
        "and overdue; the stats, what was answered in time. Empty: no target.",
    )
    complaints_within_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="A shorter target for complaints (投诉), once the model has recognised one. "
        "Empty: the target above.",
    )
    working_hours_only = models.BooleanField(
        "Count the targets in working hours only",
        default=False,
        help_text="An email that arrives on Friday evening is then due on Monday, counted "
        "from when the office opens; holidays and make-up working days (调休) are kept "
        "under Calendar days. Off: the targets run round the clock.",
    )
    working_days = models.CharField(
        max_length=7,
        default="12345",
        validators=[RegexValidator(r"^[1-7]+$", "Pick at least one working day.")],
        help_text="The usual working week (1 = Monday … 7 = Sunday).",
    )
    opens_at = models.TimeField("Office opens", default=time(9))
    closes_at = models.TimeField(
        "Office closes",
        default=time(18),
        help_text="Working hours within one day; a night shift past midnight is not "
        "supported (leave working hours off for round-the-clock teams).",
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="The office's time zone (IANA name, e.g. Asia/Shanghai, Europe/Berlin). "
        "Empty: the server's TIME_ZONE.",
    )
    auto_assign = models.BooleanField(
        "Share new drafts among the reviewers",
        default=False,
        help_text="Each draft, once ready, is assigned to the reviewer of this mailbox with "
        "the fewest drafts awaiting review (reviewers marked away are left out); they find "
        "it under “Assigned to me”.",
    )
    imap_uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    imap_last_uid = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return self.name

    TARGET_FIELDS = (
        *("reply_within_hours", "complaints_within_hours", "working_hours_only"),
        *("working_days", "opens_at", "closes_at", "time_zone"),
    )

    def save(self, *args: object, **kwargs: object) -> None:
        fields = kwargs.get("update_fields")
        before = None
        if self.pk and (fields is None or set(self.TARGET_FIELDS) & set(fields)):
            before = Mailbox.objects.filter(pk=self.pk).values_list(*self.TARGET_FIELDS).first()
        super().save(*args, **kwargs)
        if before is not None and before != tuple(getattr(self, f) for f in self.TARGET_FIELDS):
            self.reschedule_open_drafts()

    def clean(self) -> None:
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValidationError(
                {"closes_at": "The office must close after it opens, on the same day."}
            )

    @classmethod
    def default(cls) -> Mailbox:
        """The mailbox configured by the REPLYHUB_MAILBOX_* and IMAP_* settings.

        Created on first use; when IMAP_HOST is set, its IMAP settings follow the
        environment, so changing them there takes effect on the next start.
        """
        mailbox, _ = cls.objects.get_or_create(
            name="default",
            defaults={
                "address": settings.REPLYHUB_MAILBOX_ADDRESS,
                "display_name": settings.REPLYHUB_MAILBOX_NAME,
                "company_name": settings.REPLYHUB_COMPANY_NAME,
                "signoff": settings.REPLYHUB_SIGNOFF,
            },
        )
        if settings.IMAP_HOST:
            imap = {
                "imap_host": settings.IMAP_HOST,
                "imap_port": settings.IMAP_PORT,
                "imap_security": settings.IMAP_SECURITY,
                "imap_user": settings.IMAP_USER,
                "imap_folder": settings.IMAP_FOLDER,
                "imap_mark_seen": settings.IMAP_MARK_SEEN,
            }
            if any(getattr(mailbox, key) != value for key, value in imap.items()):
                for key, value in imap.items():
                    setattr(mailbox, key, value)
                mailbox.save(update_fields=list(imap))
        return mailbox

    def reply_hours(self, intent: str) -> int | None:
        """The reply target, in hours, of an email of ``intent``; None: no target."""
        if intent == "complaint" and self.complaints_within_hours:
            return self.complaints_within_hours
        return self.reply_within_hours

    def working_calendar(self) -> WorkingCalendar:
        """The team's working week and this mailbox's calendar days (its own entries win
        over those for every mailbox on the same date)."""
        exceptions: dict[date, bool] = {}
        days = CalendarDay.objects.filter(Q(mailbox=None) | Q(mailbox=self))
        for entry in days.order_by(models.F("mailbox").asc(nulls_first=True), "first_day"):
            exceptions.update(dict.fromkeys(entry.dates(), entry.kind == CalendarDay.WORKDAY))
        return WorkingCalendar(
            zone=ZoneInfo(self.time_zone or settings.TIME_ZONE),
            weekdays=parse_weekdays(self.working_days),
            opens=self.opens_at,
            closes=self.closes_at,
            exceptions=exceptions,
        )

    def working_hours_label(self) -> str:
        """The working week in the reader's language: "Mon–Fri 09:00–18:00 (Asia/Shanghai)"."""
        names = [str(WEEKDAYS_ABBR[n]) for n in range(7)]
        runs = weekday_runs(parse_weekdays(self.working_days))
        days = ", ".join(
            names[a - 1] if a == b else f"{names[a - 1]}–{names[b - 1]}" for a, b in runs
        )
        zone = self.time_zone or settings.TIME_ZONE
        return f"{days} {self.opens_at:%H:%M}–{self.closes_at:%H:%M} ({zone})"

    def due_at(
        self, intent: str, received: datetime, calendar: WorkingCalendar | None = None
    ) -> datetime | None:
        """When an email of ``intent`` that arrived at ``received`` must be answered by.

        ``calendar``: this mailbox's working calendar, when the caller has it already.
        """
        hours = self.reply_hours(intent)
        if not hours:
            return None
        if not self.working_hours_only:
            return received + timedelta(hours=hours)
        return (calendar or self.working_calendar()).add(received, hours)

    def reschedule_open_drafts(self) -> int:
        """The targets may have changed: every draft not yet decided is due by the new ones
        (decided drafts keep the due time they were decided against, for the stats)."""
        undecided = Draft.objects.filter(mailbox=self, status__in=Draft.UNDECIDED_STATUSES)
        if self.working_hours_only:
            return self._reschedule_in_working_hours(undecided)
        changed = 0
        for intents, hours in (
            (Q(intent="complaint"), self.reply_hours("complaint")),
            (~Q(intent="complaint"), self.reply_hours("")),
        ):
            due = models.F("created_at") + timedelta(hours=hours) if hours else None
            # A change the API's updated_since reports; not a new version of the text.
            changed += undecided.filter(intents).update(due_at=due, updated_at=timezone.now())
        return changed

    def _reschedule_in_working_hours(self, undecided: models.QuerySet[Draft]) -> int:
        """Each draft's due time from its own arrival through the calendar (there is no SQL
        for "8 working hours later"), written back with one prepared UPDATE per draft, which
        costs both databases far less than bulk_update's CASE over a batch."""
        calendar = self.working_calendar()
        stored = connection.ops.adapt_datetimefield_value  # as the ORM writes it
        now = stored(timezone.now())
        rows = [
            (stored(self.due_at(intent, created_at, calendar)), now, pk)
            for pk, intent, created_at in undecided.values_list("pk", "intent", "created_at")
        ]
        table = connection.ops.quote_name(Draft._meta.db_table)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET due_at = %s, updated_at = %s WHERE id = %s", rows
            )
        return len(rows)

    @property
    def effective_company_name(self) -> str:
        return self.company_name or settings.REPLYHUB_COMPANY_NAME

    @property
    def effective_signoff(self) -> str:
        return self.signoff or settings.REPLYHUB_SIGNOFF


class CalendarDay(models.Model):
    """Dates on which the usual working week does not apply to the reply targets.

    A public holiday closes the office on a weekday (国庆节, Oct 1–7); a make-up working
    day (调休) opens it on a weekend. Only mailboxes that count their targets in working
    hours look at them.
    """

    HOLIDAY, WORKDAY = "holiday", "workday"
    KINDS = [
        (HOLIDAY, gettext_lazy("Holiday: closed")),
        (WORKDAY, gettext_lazy("Working day: open (e.g. a make-up day on a weekend)")),
    ]
    first_day = models.DateField()
    last_day = models.DateField(blank=True, help_text="Empty: the first day alone.")
    kind = models.CharField(max_length=10, choices=KINDS, default=HOLIDAY)
    name = models.CharField(max_length=100, blank=True, help_text="e.g. 春节, Christmas")
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="calendar_days",
        help_text="Empty: every mailbox. A mailbox's own entry wins over one for every "
        "mailbox on the same date.",
    )

    class Meta:
        ordering = ["-first_day"]
        constraints = [
            models.CheckConstraint(
                condition=Q(last_day__gte=models.F("first_day")), name="calendar_day_order"
            )
        ]

    def __str__(self) -> str:
        span = f"{self.first_day}"
        if self.last_day != self.first_day:
            span += f" – {self.last_day}"
        return f"{self.name or self.get_kind_display()}: {span}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.last_day is None:
            self.last_day = self.first_day
        super().save(*args, **kwargs)

    # A slip of the keyboard (2072 for 2027) would otherwise store a year of dates.
    MAX_DAYS = 31

    def clean(self) -> None:
        if self.first_day and not self.last_day:
            self.last_day = self.first_day
        if self.first_day and self.last_day:
            if self.last_day < self.first_day:
                raise ValidationError({"last_day": "The last day comes before the first."})
            if (self.last_day - self.first_day).days >= self.MAX_DAYS:
                raise ValidationError(
                    {"last_day": f"At most {self.MAX_DAYS} days in one entry; add another."}
                )

    def dates(self) -> list[date]:
        """Every date the entry covers."""
        return [
            self.first_day + timedelta(days=n)
            for n in range((self.last_day - self.first_day).days + 1)
        ]


@receiver(post_save, sender=CalendarDay)
@receiver(post_delete, sender=CalendarDay)
def _calendar_changed(instance: CalendarDay, **kwargs: object) -> None:
    """Undecided drafts of the mailboxes an entry concerns are due by the new calendar
    (a signal, so that the admin's "delete selected", a queryset delete, does it too)."""
    mailboxes = Mailbox.objects.filter(working_hours_only=True)
    if instance.mailbox_id:
        mailboxes = mailboxes.filter(pk=instance.mailbox_id)
    for mailbox in mailboxes:
        mailbox.reschedule_open_drafts()


class Thread(models.Model):
    """A conversation with one customer."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="threads")
    subject = models.CharField(max_length=500, help_text="Normalized: no Re:/Fwd:/回复: prefixes.")
    customer_address = models.CharField(max_length=320)
    created_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Lookups always name the mailbox; indexes that start with it keep SQLite's
        # planner from scanning the whole mailbox through the mailbox_id index.
        indexes = [models.Index(fields=["mailbox", "customer_address", "subject"])]

    def __str__(self) -> str:
        return self.subject


class Message(models.Model):
    """One email as received (or as sent), with its raw bytes kept unchanged."""

    INBOUND, OUTBOUND = "in", "out"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="messages")
    thread = models.ForeignKey(
        Thread, null=True, on_delete=models.SET_NULL, related_name="messages"
    )
    direction = models.CharField(
        max_length=3,
        choices=[(INBOUND, gettext_lazy("received")), (OUTBOUND, gettext_lazy("sent"))],
        default=INBOUND,
    )
    raw = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    message_id = models.CharField(max_length=500)  # indexed: PostgreSQL caps key size
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    subject = models.CharField(max_length=998, blank=True)
    from_name = models.CharField(max_length=300, blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    reply_to = models.CharField(max_length=320, blank=True)
    to = models.TextField(blank=True)
    date = models.DateTimeField(null=True, blank=True)
    size = models.PositiveIntegerField(default=0, help_text="Size of the raw message in bytes.")
    text = models.TextField(blank=True, help_text="Plain-text body, complete, for display.")
    model_text = models.TextField(
        blank=True, help_text="The text without quoted history and signature: what the model reads."
    )
    html = models.TextField(blank=True, help_text="HTML body, sanitized with nh3.")
    headers = models.JSONField(default=list)
    auto_kind = models.CharField(
        max_length=40,
        blank=True,
        help_text="Why no draft: auto-reply, bulk, list, bounce, oversize, rate-limited, blocked.",
    )
    defects = models.JSONField(default=list)
    received_at = models.DateTimeField(auto_now_add=True)
    redacted_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the retention period removed the content (drafts/retention.py).",
    )
    search_text = models.TextField(
        blank=True,
        editable=False,
        help_text="Subject, sender and body as the search index reads them.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "sha256"], name="unique_raw_per_mailbox")
        ]
        indexes = [
            models.Index(fields=["mailbox", "message_id"]),
            models.Index(fields=["mailbox", "from_address", "received_at"]),
            # /metrics counts received mail per mailbox from this index alone.
            models.Index(fields=["mailbox", "direction"], name="message_mailbox_direction"),
        ]
        ordering = ["date", "id"]

    def __str__(self) -> str:
        return f"{self.subject} ({self.from_address})"

    def save(self, *args: object, **kwargs: object) -> None:
        self.search_text = self.searchable_text()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "search_text"}
        super().save(*args, **kwargs)

    def searchable_text(self) -> str:
        """What search finds this message by; bulk_create callers set search_text from it."""
        return search.document(self.subject, self.from_name, self.from_address, self.text)

    @property
    def text_for_model(self) -> str:
        return self.model_text or self.text

    @property
    def reply_address(self) -> str:
        """Where a reply goes: Reply-To when present, else From."""
        return self.reply_to or self.from_address


class Attachment(models.Model):
    """A file that came with a message; served only as a download."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255, help_text="Sanitized: no paths, no controls.")
    content_type = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    data = models.BinaryField(help_text="Empty when the file was over the size limit.")
    inline = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.filename

    @property
    def stored(self) -> bool:
        """False when the file was over the size limit and only its metadata was kept."""
        return self.size == 0 or len(self.data) > 0


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


class SavedReply(models.Model):
    """A text reviewers insert into a reply with a click: a refund procedure, opening hours,
    the link to a manual. {variables} are filled from the draft; one the draft cannot fill
    stays as a [bracketed] placeholder, which stops the approval until someone fills it."""

    VARIABLES = {
        "customer_name": "the customer's name (as analysed, else the sender's)",
        "product": "the product the email is about",
        "order_number": "the first order or ticket number in the email",
        "key_date": "the first date in the email",
        "company_name": "the mailbox's company name",
        "signoff": "the mailbox's sign-off",
        "reviewer": "the name of the reviewer inserting it",
    }
    HELP = (
        "The part of the reply it stands for (the draft keeps its greeting and sign-off). "
        "Variables: " + ", ".join(f"{{{name}}}" for name in VARIABLES) + "; write {{ and }} "
        "for a brace."
    )

    title = models.CharField(max_length=100, help_text="What reviewers search for.")
    text = models.TextField(help_text=HELP)
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="saved_replies",
        help_text="Empty: offered in every mailbox.",
    )
    language = models.CharField(
        max_length=5,
        blank=True,
        choices=[("", gettext_lazy("Any language")), ("zh", "简体中文"), ("en", "English")],
        help_text="Offered for emails in this language (empty: every language).",
    )
    intent = models.CharField(
        max_length=30,
        blank=True,
        choices=[("", gettext_lazy("Any intent")), *INTENT_CHOICES],
        help_text="Listed first for drafts of this intent.",
    )
    is_active = models.BooleanField(default=True, help_text="Untick to stop offering it.")
    uses = models.PositiveIntegerField(default=0, editable=False, help_text="Times inserted.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )

    class Meta:
        ordering = ["title", "id"]
        verbose_name_plural = "saved replies"

    def __str__(self) -> str:
        return self.title

    def variables(self) -> list[str]:
        """The {names} the text uses, in order; ValueError names a malformed brace."""
        try:
            return [
                name
                for _text, name, _spec, _conv in string.Formatter().parse(self.text)
                if name is not None
            ]
        except ValueError as exc:
            raise ValueError(f"{exc} (write {{{{ and }}}} for a brace)") from exc

    def clean(self) -> None:
        try:
            used = self.variables()
        except ValueError as exc:
            raise ValidationError({"text": str(exc)}) from exc
        unknown = sorted({name for name in used if name not in self.VARIABLES})
        if unknown:
            raise ValidationError(
                {
                    "text": f"Unknown variable(s): {', '.join('{' + n + '}' for n in unknown)}. "
                    f"Use: {', '.join('{' + n + '}' for n in self.VARIABLES)}."
                }
            )


class BlockedSender(models.Model):
    """An address or a whole domain whose mail is stored but gets no draft (spam, a
    marketing sender): listed under "Not drafted" as blocked, never answered by the model."""

    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="blocked_senders",
        help_text="Empty: blocked in every mailbox.",
    )
    pattern = models.CharField(
        max_length=320,
        help_text="An address (offers@spam.example) or a whole domain (@spam.example).",
    )
    note = models.CharField(max_length=300, blank=True, help_text="Why, for colleagues.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )

    class Meta:
        ordering = ["pattern", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "pattern"], name="unique_blocked_sender")
        ]

    def __str__(self) -> str:
        return self.pattern

    def save(self, *args: object, **kwargs: object) -> None:
        self.pattern = self.pattern.strip().lower()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        local, at, domain = self.pattern.strip().lower().rpartition("@")
        whole_domain = not local and self.pattern.strip().startswith("@")
        address = bool(local) and not re.search(r"[@\s]", local)
        if (
            not at
            or not (whole_domain or address)
            or not re.fullmatch(r"[^\s@.]+(\.[^\s@.]+)+", domain)
        ):
            raise ValidationError(
                {
                    "pattern": f"“{self.pattern}” is neither an address (name@example.com) nor "
                    "a domain (@example.com)."
                }
            )

    @classmethod
    def block(cls, draft: Draft, user: object) -> BlockedSender | None:
        """Block the sender of ``draft``'s email in its mailbox (a reviewer rejecting spam);
        None when the email has no sender address to block."""
        address = draft.message.from_address.strip().lower()
        if not address:
            return None
        blocked, _created = cls.objects.get_or_create(
            mailbox_id=draft.mailbox_id,
            pattern=address,
            defaults={"created_by": user, "note": f"Rejected draft {draft.pk}"},
        )
        return blocked

    @classmethod
    def matcher(cls, mailbox: Mailbox) -> Callable[[str], bool]:
        """Whether an address is blocked in ``mailbox`` (one query, for a whole batch)."""
        patterns = set(
            cls.objects.filter(Q(mailbox__isnull=True) | Q(mailbox=mailbox)).values_list(
                "pattern", flat=True
            )
        )
        if not patterns:
            return lambda address: False

        def blocked(address: str) -> bool:
            address = address.strip().lower()
            return address in patterns or "@" + address.rpartition("@")[2] in patterns

        return blocked


class DraftQuerySet(models.QuerySet):
    """Every change to a draft bumps its ``version``; such an UPDATE also stamps
    ``updated_at``, so the API can list what changed since a time (claims, which change no
    version, leave it alone)."""

    def update(self, **kwargs: object) -> int:
        if "version" in kwargs:
            kwargs.setdefault("updated_at", timezone.now())
        return super().update(**kwargs)

    def overdue(self, now: datetime | None = None) -> DraftQuerySet:
        """Past the reply target and not yet approved or rejected (index ``draft_due``)."""
        return self.filter(status__in=Draft.UNDECIDED_STATUSES, due_at__lt=now or timezone.now())

    def in_drafting_order(self, first: int | None = None) -> DraftQuerySet:
        """Queued drafts in the order the workers take them: those a person asked for again
        (a reviewer waits on the draft page) by the time of asking, then draft ``first``
        (the task's own), then the rest oldest first."""
        own = models.Case(models.When(pk=first, then=0), default=1) if first else models.Value(1)
        return self.filter(status=Draft.QUEUED).order_by(
            models.F("requested_at").asc(nulls_last=True), own, "created_at", "id"
        )


class Draft(models.Model):
    """The model's proposed reply to one message, and its review."""

    QUEUED = "queued"
    GENERATING = "generating"
    FAILED = "failed"
    READY = "ready"
    APPROVED = "approved"
    SENDING = "sending"
    SENT = "sent"
    SEND_FAILED = "send_failed"
    SEND_UNCERTAIN = "send_uncertain"
    REJECTED = "rejected"
    STATUSES = [
        (QUEUED, gettext_lazy("Waiting for the model")),
        (GENERATING, gettext_lazy("Generating")),
        (FAILED, gettext_lazy("Generation failed")),
        (READY, gettext_lazy("Awaiting review")),
        (APPROVED, gettext_lazy("Approved, waiting to send")),
        (SENDING, gettext_lazy("Approved, sending")),
        (SENT, gettext_lazy("Sent")),
        (SEND_FAILED, gettext_lazy("Approved, sending failed")),
        (SEND_UNCERTAIN, gettext_lazy("Approved, delivery uncertain")),
        (REJECTED, gettext_lazy("Rejected")),
    ]
    # Not yet approved or rejected: what a reply target still applies to.
    UNDECIDED_STATUSES = [QUEUED, GENERATING, FAILED, READY]
    # Approved by a reviewer, whatever became of the sending.
    APPROVED_STATUSES = [APPROVED, SENDING, SENT, SEND_FAILED, SEND_UNCERTAIN]
    # The mail server has the reply, or may have it: too late to undo the approval.
    HANDED_OVER = [SENDING, SENT, SEND_UNCERTAIN]
    REJECT_REASONS = [
        ("wrong_intent", gettext_lazy("Wrong intent or misunderstood the email")),
        ("wrong_facts", gettext_lazy("Wrong or invented facts")),
        ("tone", gettext_lazy("Tone or format not acceptable")),
        ("needs_human", gettext_lazy("Needs a personal answer")),
        ("no_reply_needed", gettext_lazy("No reply needed")),
        ("other", gettext_lazy("Other")),
    ]

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="draft")
    # The message's mailbox, copied here so that a reviewer's queue needs no join (speed at
    # 100,000 drafts); a message never changes mailbox.
    mailbox = models.ForeignKey(
        Mailbox, on_delete=models.CASCADE, related_name="drafts", editable=False
    )
    status = models.CharField(max_length=20, choices=STATUSES, default=QUEUED, db_index=True)
    intent = models.CharField(max_length=30, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    intent_scores = models.JSONField(default=dict, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=5, blank=True)
    flags = models.JSONField(default=list, blank=True)
    flagged = models.GeneratedField(
        expression=~Q(flags=[]), output_field=models.BooleanField(), db_persist=True
    )
    generated_text = models.TextField(blank=True, help_text="The reply as the model wrote it.")
    reply_text = models.TextField(blank=True, help_text="The reply as it stands now.")
    template = models.ForeignKey(
        PromptTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts"
    )
    generation = models.JSONField(default=dict, blank=True, help_text="Engine, model, sampling.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change.")
    created_at = models.DateTimeField(auto_now_add=True)
    generating_since = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When a person asked the model for this draft again (regenerate, retry); "
        "the workers draft such drafts before the rest of the queue.",
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_drafts",
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_drafts",
        help_text="Who has the draft open for editing, until claimed_until.",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the email must be answered by: its arrival plus the mailbox's reply "
        "target (for its intent). Empty: no target.",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reject_reason = models.CharField(max_length=30, choices=REJECT_REASONS, blank=True)
    reject_note = models.TextField(blank=True)
    edit_distance = models.FloatField(
        null=True,
        blank=True,
        editable=False,
        help_text="How much the approved reply differs from the generated draft, 0 to 1 "
        "(whitespace ignored); set on approval.",
    )
    outgoing_message_id = models.CharField(max_length=998, blank=True)
    send_attempts = models.PositiveIntegerField(default=0)
    send_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Null only for drafts older than the field until its migration fills it in.
    updated_at = models.DateTimeField(auto_now=True, null=True, editable=False)

    objects = DraftQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        # The queue's filters ride along in its indexes, so that counting and paging a
        # filtered queue reads the index alone, never the wide rows.
        indexes = [
            models.Index(fields=["updated_at", "id"], name="draft_updated"),
            models.Index(
                fields=["status", "created_at", "intent", "language", "flagged", "assigned_to"],
                name="draft_queue",
            ),
            models.Index(
                fields=[
                    *("mailbox", "status", "created_at"),
                    *("intent", "language", "flagged", "assigned_to"),
                ],
                name="draft_mailbox_queue",
            ),
            # /metrics: drafts written so far, and those of the last hour.
            models.Index(fields=["ready_at"], name="draft_ready_at"),
            # The queue's "due soonest" order and its overdue filter (with created_at, a page
            # of overdue drafts in order of arrival is sorted from the index alone); /metrics.
            models.Index(fields=["status", "due_at", "created_at", "id"], name="draft_due"),
        ]

    def __str__(self) -> str:
        return f"Draft for {self.message}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.mailbox_id is None:
            self.mailbox_id = self.message.mailbox_id
        if self._state.adding and self.due_at is None:
            self.due_at = self.message.mailbox.due_at(self.intent, timezone.now())
        super().save(*args, **kwargs)

    @property
    def intent_label(self) -> str:
        english, chinese = INTENTS.get(self.intent, (self.intent, ""))
        return f"{english} · {chinese}" if chinese else english

    @property
    def awaits_answer_by(self) -> datetime | None:
        """The due time, while the email still waits for an answer (not yet decided)."""
        return self.due_at if self.status in self.UNDECIDED_STATUSES else None

    @property
    def overdue(self) -> bool:
        due = self.awaits_answer_by
        return due is not None and due < timezone.now()

    @property
    def was_edited(self) -> bool:
        return _normalized(self.reply_text) != _normalized(self.generated_text)

    def edit_ratio(self) -> float:
        """How much of the generated text reviewers changed: 0 unchanged, 1 rewritten."""
        matcher = difflib.SequenceMatcher(None, self.generated_text, self.reply_text)
        return round(1 - matcher.ratio(), 4)

    def _transition(
        self,
        from_statuses: list[str],
        event: dict[str, object] | None = None,
        then: Callable[[Draft], None] | None = None,
        *,
        expected_version: int | None = None,
        **changes: object,
    ) -> bool:
        """Apply ``changes`` only if the row is still in one of ``from_statuses``.

        A conditional UPDATE: of two concurrent callers exactly one wins. With
        ``expected_version`` it also fails when anyone changed the draft since that version
        was read, and a reviewer's action fails while someone else holds the draft's claim.
        The winner's ReviewEvent and follow-up work (``then``) happen in one transaction.
        """
        changes["version"] = models.F("version") + 1
        rows = Draft.objects.filter(pk=self.pk, status__in=from_statuses)
        if expected_version is not None:
            rows = rows.filter(version=expected_version)
        user = (event or {}).get("user")
        if getattr(user, "pk", None):
            rows = rows.exclude(~Q(claimed_by=user), claimed_until__gt=timezone.now())
        with transaction.atomic():
            rows = rows.update(**changes)
            self.refresh_from_db()
            if rows == 1:
                if event:
                    ReviewEvent.objects.create(draft=self, **event)
                if then:
                    then(self)
        return rows == 1

    def claim_for_generation(self) -> bool:
        """Take a queued draft for generation; False if another worker has it."""
        return self._transition(
            [self.QUEUED], status=self.GENERATING, error="", generating_since=timezone.now()
        )

    def drafts_ahead(self) -> int:
        """How many queued drafts the workers will take before this queued one (see
        DraftQuerySet.in_drafting_order; a task's own draft is not known in advance)."""
        queued = Draft.objects.filter(status=self.QUEUED).exclude(pk=self.pk)
        if self.requested_at:
            earlier = Q(requested_at__lt=self.requested_at) | Q(
                requested_at=self.requested_at, id__lt=self.pk
            )
        else:
            earlier = (
                Q(requested_at__isnull=False)
                | Q(created_at__lt=self.created_at)
                | Q(created_at=self.created_at, id__lt=self.pk)
            )
        return queued.filter(earlier).count()

    CLAIM_MINUTES = 5

    def claim(self, user: object) -> bool:
        """Hold the draft for ``user`` for CLAIM_MINUTES, or renew their hold.

        Fails while someone else's claim runs; an expired claim is free to take.
        """
        now = timezone.now()
        free = Q(claimed_by__isnull=True) | Q(claimed_until__lte=now) | Q(claimed_by=user)
        rows = Draft.objects.filter(free, pk=self.pk, status=self.READY).update(
            claimed_by=user, claimed_until=now + timedelta(minutes=self.CLAIM_MINUTES)
        )
        self.refresh_from_db(fields=["claimed_by", "claimed_until"])
        return rows == 1

    def release(self, user: object, until: datetime | None = None) -> None:
        """Give up ``user``'s claim, if they hold it.

        With ``until``, only the claim that ran until then: a page being left must not
        release the claim its successor (a reload, the page after a save) has just renewed.
        """
        claims = Draft.objects.filter(pk=self.pk, claimed_by=user)
        if until is not None:
            claims = claims.filter(claimed_until=until)
        claims.update(claimed_by=None, claimed_until=None)

    def held_by(self) -> object | None:
        """The user whose claim on the draft is running, if any."""
        if self.claimed_by_id and self.claimed_until and self.claimed_until > timezone.now():
            return self.claimed_by
        return None

    def save_edit(self, user: object, text: str, version: int | None = None) -> bool:
        """Store a reviewer's edit of a draft awaiting review (of ``version``, if given)."""
        event = {"user": user, "action": ReviewEvent.EDIT, "text_before": self.reply_text}
        return self._transition(
            [self.READY], event | {"text_after": text}, expected_version=version, reply_text=text
        )

    def approve(self, user: object, text: str, version: int | None = None) -> bool:
        """Approve ``text`` as the reply and queue it for sending (once)."""
        event = {"user": user, "action": ReviewEvent.APPROVE, "text_before": self.reply_text}
        return self._transition(
            [self.READY],
            event | {"text_after": text},
            then=_queue_reply,
            expected_version=version,
            status=self.APPROVED,
            claimed_by=None,
            claimed_until=None,
            reply_text=text,
            decided_at=timezone.now(),
            decided_by=user,
            edit_distance=edit_distance(self.generated_text, text),
        )

    def reject(self, user: object, reason: str, note: str = "", version: int | None = None) -> bool:
        """Reject the draft; nothing is sent."""
        event = {
            "user": user,
            "action": ReviewEvent.REJECT,
            "text_before": self.reply_text,
            "reason": reason,
            "note": note,
        }
        return self._transition(
            [self.READY],
            event,
            expected_version=version,
            status=self.REJECTED,
            claimed_by=None,
            claimed_until=None,
            decided_at=timezone.now(),
            decided_by=user,
            reject_reason=reason,
            reject_note=note,
        )

    def reopen(self, user: object, hold: bool = True) -> bool:
        """Take a rejection back: the draft awaits review again with its text (held for
        ``user`` with ``hold``: they are about to answer it) and the stats forget the
        decision. Not once the retention period has removed the email's content."""
        from drafts import daily  # it imports this module

        if Message.objects.filter(pk=self.message_id, redacted_at__isnull=False).exists():
            return False
        decided = self.decided_at
        event = {
            "user": user,
            "action": ReviewEvent.REOPEN,
            "text_before": self.reply_text,
            "reason": self.reject_reason,
            "note": self.reject_note,
        }
        now = timezone.now()
        return self._transition(
            [self.REJECTED],
            event,
            then=lambda draft: daily.forget(decided),
            status=self.READY,
            decided_at=None,
            decided_by=None,
            reject_reason="",
            reject_note="",
            claimed_by=user if hold else None,
            claimed_until=now + timedelta(minutes=self.CLAIM_MINUTES) if hold else None,
        )

    def attach(
        self, user: object, files: list[tuple[str, str, bytes]], version: int | None
    ) -> bool:
        """Add files (name, content type, bytes) to the reply awaiting review.

        A change to the reply like an edit: it needs the version the reviewer saw and no one
        else's claim, and it makes the version new, so an approval read before it fails
        instead of sending what its reviewer did not see. Sizes are checked by the caller
        (drafts/reply_files.py).
        """

        def store(draft: Draft) -> None:
            ReplyAttachment.objects.bulk_create(
                ReplyAttachment(
                    draft=draft,
                    filename=name,
                    content_type=kind,
                    size=len(data),
                    data=data,
                    uploaded_by=user,
                )
                for name, kind, data in files
            )

        names = ", ".join(name for name, _kind, _data in files)
        event = {"user": user, "action": ReviewEvent.ATTACH, "note": names}
        return self._transition([self.READY], event, store, expected_version=version)

    def detach(self, user: object, attachment_id: int, version: int | None) -> bool:
        """Take a file off the reply awaiting review (guarded as ``attach``)."""
        found = self.reply_attachments.filter(pk=attachment_id).first()
        if found is None:
            return False
        event = {"user": user, "action": ReviewEvent.DETACH, "note": found.filename}
        return self._transition(
            [self.READY],
            event,
            lambda draft: ReplyAttachment.objects.filter(pk=found.pk).delete(),
            expected_version=version,
        )

    NOTE_MAX = 2000

    def add_note(self, user: object, text: str) -> ReviewEvent:
        """A note for colleagues in the draft's history ("asked finance, waiting"); never
        sent, and no change to the draft: an edit in progress keeps its version."""
        return ReviewEvent.objects.create(
            draft=self, user=user, action=ReviewEvent.NOTE, note=text[: self.NOTE_MAX]
        )

    def retry_generation(self, user: object | None) -> bool:
        """Queue a failed draft for the model again."""
        event = {"user": user, "action": ReviewEvent.RETRY, "note": self.error}
        return self._transition(
            [self.FAILED],
            event,
            _enqueue_generation,
            status=self.QUEUED,
            requested_at=timezone.now() if user else None,
        )

    INSTRUCTION_MAX = 500

    def regenerate(
        self,
        user: object,
        temperature: float | None = None,
        template: PromptTemplate | None = None,
        instruction: str = "",
        reply: str | None = None,
        version: int | None = None,
    ) -> bool:
        """Queue the draft for the model again, optionally at another temperature or template.

        With ``instruction`` ("shorter", "mention the refund policy") the model rewrites
        ``reply`` (the text in the reviewer's editor; by default the saved one) as asked.
        The request is kept in ``generation["requested"]`` until the worker honours it.
        With ``version``, refused if the draft changed since that version was read.
        """
        requested: dict[str, object] = {
            "temperature": temperature,
            "template": template.pk if template else None,
        }
        note = [f"{k} {v}" for k, v in requested.items() if v is not None]
        if instruction := instruction.strip()[: self.INSTRUCTION_MAX]:
            text = self.reply_text if reply is None else reply
            requested.update(instruction=instruction, revise=text)
            note.append(f"asked: {instruction}")
        event = {
            "user": user,
            "action": ReviewEvent.REGENERATE,
            "text_before": self.reply_text,
            "note": ", ".join(note),
        }
        return self._transition(
            [self.READY, self.FAILED],
            event,
            _enqueue_generation,
            expected_version=version,
            status=self.QUEUED,
            generation={**self.generation, "requested": requested},
            requested_at=timezone.now(),
            claimed_by=None,
            claimed_until=None,
        )

    def reassign(self, user: object, to: object | None) -> bool:
        """Give the draft to another reviewer (or to nobody) to answer."""
        event = {"user": user, "action": ReviewEvent.REASSIGN, "note": f"to {to or 'nobody'}"}
        return self._transition(
            [self.QUEUED, self.GENERATING, self.READY, self.FAILED],
            event,
            assigned_to=to,
            claimed_by=None,
            claimed_until=None,
        )

    @property
    def delivery(self) -> Outbox | None:
        """The latest outbox record of this draft's reply, if it was approved."""
        return self.deliveries.order_by("-id").first()


def _enqueue_generation(draft: Draft) -> None:
    from drafts.tasks import enqueue_generation  # drafts.tasks imports this module

    enqueue_generation(draft)


def _queue_reply(draft: Draft) -> None:
    from drafts.sending import queue_reply  # drafts.sending imports this module

    queue_reply(draft)


def _normalized(text: str) -> str:
    return " ".join(text.split())


def edit_distance(generated: str, approved: str) -> float:
    """How much of the generated reply was changed: 0 unchanged, 1 rewritten.

    Whitespace is normalized first, so that 0 means exactly what ``was_edited`` calls
    unchanged. Stored on approval: computing it per request over every draft is too slow.
    """
    matcher = difflib.SequenceMatcher(
        None, _normalized(generated), _normalized(approved), autojunk=False
    )
    return 1 - matcher.ratio()


class ReplyAttachment(models.Model):
    """A file a reviewer attached to a reply: sent with it once approved, else only
    downloadable by those who see the draft."""

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="reply_attachments")
    filename = models.CharField(max_length=255, help_text="Sanitized: no paths, no controls.")
    content_type = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    data = models.BinaryField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename


class ReviewEvent(models.Model):
    """Who did what to a draft, and when, with the text before and after."""

    EDIT, APPROVE, REJECT, RETRY, RETRY_SEND, SENT, SEND_FAILED = (
        "edit",
        "approve",
        "reject",
        "retry",
        "retry_send",
        "sent",
        "send_failed",
    )
    REGENERATE, REASSIGN = "regenerate", "reassign"
    SEND_UNCERTAIN, CONFIRM_SENT = "send_uncertain", "confirm_sent"
    UNDO, REOPEN, NOTE = "undo", "reopen", "note"
    ATTACH, DETACH = "attach", "detach"
    ACTIONS = [
        (EDIT, gettext_lazy("Edited")),
        (APPROVE, gettext_lazy("Approved")),
        (REJECT, gettext_lazy("Rejected")),
        (RETRY, gettext_lazy("Retried generation")),
        (RETRY_SEND, gettext_lazy("Retried sending")),
        (SENT, gettext_lazy("Sent")),
        (SEND_FAILED, gettext_lazy("Sending failed")),
        (REGENERATE, gettext_lazy("Asked the model again")),
        (REASSIGN, gettext_lazy("Reassigned")),
        (SEND_UNCERTAIN, gettext_lazy("Delivery uncertain")),
        (CONFIRM_SENT, gettext_lazy("Confirmed as delivered")),
        (UNDO, gettext_lazy("Approval undone before sending")),
        (REOPEN, gettext_lazy("Rejection taken back")),
        (NOTE, gettext_lazy("Note for the team")),
        (ATTACH, gettext_lazy("File attached to the reply")),
        (DETACH, gettext_lazy("File removed from the reply")),
    ]

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="events")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=20, choices=ACTIONS)
    text_before = models.TextField(blank=True)
    text_after = models.TextField(blank=True)
    # The reason's key, shown in the reader's language (a rejection's free text is the note).
    reason = models.CharField(max_length=30, choices=Draft.REJECT_REASONS, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        # /metrics counts events per action from this index, not the wide rows.
        indexes = [models.Index(fields=["action"], name="reviewevent_action")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.user or 'system'}"


# The outbox, template replays, daily stats totals and chat notifications live in modules of
# their own (this one is long enough); importing them here registers their models with Django.
# So do the REST API's tokens and callbacks (drafts/api/), the records of erasures, and
# each user's two-step verification (drafts/two_factor.py).
from drafts.api.callbacks import ApiCallback  # noqa: E402, F401
from drafts.api.tokens import ApiToken  # noqa: E402, F401
from drafts.daily import DayTotal, StatsDay  # noqa: E402, F401
from drafts.erasure import Erasure  # noqa: E402, F401
from drafts.health import WorkerHeartbeat  # noqa: E402, F401
from drafts.notify import Notification, NotificationChannel  # noqa: E402, F401
from drafts.outbox import Outbox  # noqa: E402
from drafts.replay import TemplateReplay  # noqa: E402, F401
from drafts.two_factor import RecoveryCode, TwoFactor  # noqa: E402, F401
