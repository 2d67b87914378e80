"""Mailboxes (where mail comes in, with their company profile and reply targets) and the
calendar days that count their targets in working hours.

Imported by drafts.models, which registers these models with Django (see its end).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext_lazy

from drafts.business_hours import (
    WorkingCalendar,
    parse_weekdays,
    validate_time_zone,
    weekday_runs,
)
from drafts.models import Draft


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
    reply_to_all = models.BooleanField(
        default=True,
        help_text="New drafts copy (Cc) everyone the customer's email went to, but this "
        "team's mailboxes, as a mail client's Reply all does; reviewers may change the list.",
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

    WORKING_HOURS_FIELDS = (
        "working_hours_only",
        "working_days",
        "opens_at",
        "closes_at",
        "time_zone",
    )
    TARGET_FIELDS = ("reply_within_hours", "complaints_within_hours", *WORKING_HOURS_FIELDS)

    def save(self, *args: object, **kwargs: object) -> None:
        fields = kwargs.get("update_fields")
        before = None
        if self.pk and (fields is None or set(self.TARGET_FIELDS) & set(fields)):
            before = Mailbox.objects.filter(pk=self.pk).values(*self.TARGET_FIELDS).first()
        super().save(*args, **kwargs)
        changed = {f for f in self.TARGET_FIELDS if before and before[f] != getattr(self, f)}
        if changed:
            self.reschedule_open_drafts()
        if changed & set(self.WORKING_HOURS_FIELDS):  # the stats' times to answer, too
            from drafts import daily  # drafts.daily imports this module

            daily.forget_all()

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
        return Mailbox.working_calendars([self])[self.pk]

    @classmethod
    def working_calendars(
        cls, mailboxes: list[Mailbox] | None = None
    ) -> dict[int, WorkingCalendar]:
        """The working calendars of ``mailboxes`` (by default those counting working hours)
        by their ids, from one read of the calendar days."""
        if mailboxes is None:
            mailboxes = list(cls.objects.filter(working_hours_only=True))
        entries = CalendarDay.objects.filter(Q(mailbox=None) | Q(mailbox__in=mailboxes))
        entries = list(entries.order_by(models.F("mailbox").asc(nulls_first=True), "first_day"))
        return {mailbox.pk: mailbox._calendar_of(entries) for mailbox in mailboxes}

    def _calendar_of(self, entries: list[CalendarDay]) -> WorkingCalendar:
        """This mailbox's calendar from ``entries``, those for every mailbox ordered first."""
        exceptions: dict[date, bool] = {}
        for entry in entries:
            if entry.mailbox_id in (None, self.pk):
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
    if mailboxes:
        from drafts import daily  # drafts.daily imports this module

        daily.forget_all()  # times to answer in working hours
