"""Django admin: mailboxes, prompt templates (versioned), and read-only records."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drafts import erasure, preview
from drafts.erasure import Erasure
from drafts.fields import describe_flag
from drafts.models import (
    BlockedSender,
    CalendarDay,
    Draft,
    Mailbox,
    Message,
    Outbox,
    PromptTemplate,
    ReviewEvent,
    SamplingRule,
    SavedReply,
    StaffProfile,
    TemplateReplay,
    Thread,
)
from drafts.signed_in_admin import SignedInSessionInline, sign_out_everywhere
from drafts.two_factor_admin import TwoFactorUserAdminMixin
from inference.drafting import TEMPLATE_VARIABLES, TemplateError, render_template


class MailboxForm(forms.ModelForm):
    """The working week as seven boxes to tick, stored as ISO weekday digits ("12345")."""

    working_days = forms.MultipleChoiceField(
        choices=[(str(n), WEEKDAYS[n - 1]) for n in range(1, 8)],
        widget=forms.CheckboxSelectMultiple,
        initial=list("12345"),
        error_messages={"required": "Pick at least one working day."},
        help_text="The usual working week; holidays and make-up days go under Calendar days.",
    )

    class Meta:
        model = Mailbox
        # The admin lists every field, as it did before this form.
        fields = "__all__"  # noqa: DJ007

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["working_days"] = list(self.instance.working_days)

    def clean_working_days(self) -> str:
        return "".join(sorted(self.cleaned_data["working_days"]))


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    form = MailboxForm
    list_display = (
        *("name", "address", "display_name", "company_name", "reply_within_hours"),
        "auto_assign",
    )
    filter_horizontal = ("reviewers",)


@admin.register(CalendarDay)
class CalendarDayAdmin(admin.ModelAdmin):
    """Holidays and make-up working days, for mailboxes that count targets in working hours.

    Saving or deleting an entry moves the due times of the drafts still awaiting a decision.
    """

    list_display = ("__str__", "first_day", "last_day", "kind", "mailbox")
    list_filter = ("kind", "mailbox")
    search_fields = ("name",)
    date_hierarchy = "first_day"


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    verbose_name_plural = "Role and language"


class StaffUserAdmin(TwoFactorUserAdminMixin, UserAdmin):
    """Users with their ReplyHub role and language on the same page, their two-step
    verification (drafts/two_factor_admin.py) and where they are signed in
    (drafts/signed_in_admin.py)."""

    inlines = (StaffProfileInline, SignedInSessionInline)
    actions = (*TwoFactorUserAdminMixin.actions, sign_out_everywhere)
    list_display = (*UserAdmin.list_display, "role")
    # The role gives admin access; only a superuser hands out anything beyond it.
    PRIVILEGES = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> tuple:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, *self.PRIVILEGES)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        users = super().get_queryset(request)
        return users if request.user.is_superuser else users.filter(is_superuser=False)

    @admin.display(description="Role")
    def role(self, user: User) -> str:
        return StaffProfile.role_of(user)


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)


class PromptTemplateForm(forms.ModelForm):
    """Rejects templates that use unknown variables or cannot be rendered."""

    class Meta:
        model = PromptTemplate
        fields = ("name", "intent", "system_prompt", "analysis_prompt", "reply_prompt")

    def clean(self) -> dict:
        cleaned = super().clean()
        earlier = PromptTemplate.objects.filter(name=cleaned.get("name")).first()
        if earlier and earlier.intent != cleaned.get("intent", ""):
            self.add_error(
                "intent",
                f"Every version of “{earlier.name}” is for {earlier.get_intent_display()}; "
                "give a template for another intent a name of its own.",
            )
        sample = {name: f"<{name}>" for name in TEMPLATE_VARIABLES}
        for field in ("system_prompt", "analysis_prompt", "reply_prompt"):
            try:
                render_template(cleaned.get(field) or "", sample)
            except (TemplateError, ValueError, IndexError, KeyError) as exc:
                self.add_error(field, str(exc))
        return cleaned


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    form = PromptTemplateForm
    list_display = ("name", "intent", "version", "is_active", "created_at", "created_by")
    list_filter = ("name", "intent", "is_active")
    readonly_fields = ("version", "is_active", "created_at", "created_by")
    actions = ("activate_version",)

    @admin.action(description="Use the selected version (roll back or forward to it)")
    def activate_version(self, request: HttpRequest, queryset: QuerySet[PromptTemplate]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", level=messages.ERROR)
            return
        template = queryset.get()
        template.activate()
        self.message_user(request, f"{template} is now in use for new drafts.")

    def save_model(self, request: HttpRequest, obj: PromptTemplate, form, change: bool) -> None:
        # Every save is a new version; drafts keep pointing at the version they used.
        obj.save_as_new_version(request.user)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/preview/", view(self.preview_view), name="drafts_prompttemplate_preview"
            ),
            path("<int:pk>/replay/", view(self.replay_view), name="drafts_prompttemplate_replay"),
            path(
                "replay/<int:replay_id>/",
                view(self.replay_report_view),
                name="drafts_prompttemplate_replay_report",
            ),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: PromptTemplate, title: str) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": template,
            "title": title,
        }

    def replay_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Start a replay of this version over the last N approved replies."""
        template = get_object_or_404(PromptTemplate, pk=pk)
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        form = ReplayForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            replay = TemplateReplay.start(template, form.cleaned_data["emails"], request.user)
            return redirect("admin:drafts_prompttemplate_replay_report", replay.pk)
        context = self._page(request, template, f"Replay {template}")
        context |= {"form": form, "replays": template.replays.all()[:10]}
        return TemplateResponse(request, "admin/drafts/prompttemplate/replay.html", context)

    def replay_report_view(self, request: HttpRequest, replay_id: int) -> HttpResponse:
        """Progress, then the report; activating the version is one button away."""
        replay = get_object_or_404(TemplateReplay.objects.select_related("template"), pk=replay_id)
        template = replay.template
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        if request.method == "POST" and replay.state == TemplateReplay.DONE:
            template.activate()
            self.message_user(request, f"{template} is now in use for new drafts.")
            return redirect("admin:drafts_prompttemplate_replay_report", replay.pk)
        context = self._page(request, template, f"Replay of {template}")
        context |= {
            "replay": replay,
            "summary": replay.summary(),
            "rows": [r for r in replay.rows if "candidate" in r][:100],
        }
        return TemplateResponse(request, "admin/drafts/prompttemplate/replay_report.html", context)

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Run this version on a stored or pasted email; show the result, store nothing."""
        template = get_object_or_404(PromptTemplate, pk=pk)
        if not self.has_view_or_change_permission(request, template):
            raise PermissionDenied
        form = PreviewForm(request.POST if request.method == "POST" else None)
        result, error = None, ""
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            email = data["message"] or preview.pasted_email(
                data["subject"], data["sender"], data["body"]
            )
            mailbox = data["message"].mailbox if data["message"] else Mailbox.default()
            try:
                result = preview.run(template, email, mailbox)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": template,
            "title": f"Preview {template}",
            "form": form,
            "result": result,
            "flags": [describe_flag(f) for f in result.outcome.flags] if result else [],
            "error": error,
        }
        return TemplateResponse(request, "admin/drafts/prompttemplate/preview.html", context)


class ReplayForm(forms.Form):
    emails = forms.IntegerField(
        min_value=1,
        max_value=2000,
        initial=50,
        help_text="How many of the most recently approved replies to replay.",
    )


class PreviewForm(forms.Form):
    """A stored email, or one pasted in."""

    message = forms.ModelChoiceField(
        queryset=Message.objects.filter(direction=Message.INBOUND).order_by("-date", "-id"),
        required=False,
        empty_label="— paste an email below instead —",
    )
    subject = forms.CharField(required=False, max_length=998)
    sender = forms.CharField(required=False, max_length=400, help_text="Name <address>")
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10}))

    def clean(self) -> dict:
        cleaned = super().clean()
        if not cleaned.get("message") and not cleaned.get("body", "").strip():
            raise forms.ValidationError("Pick a stored email or paste one (at least its text).")
        return cleaned


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("subject", "from_address", "date", "direction", "auto_kind", "mailbox")
    list_filter = ("direction", "auto_kind", "mailbox")
    search_fields = ("subject", "from_address", "message_id")
    exclude = ("raw",)


@admin.register(Thread)
class ThreadAdmin(ReadOnlyAdmin):
    list_display = ("subject", "customer_address", "last_message_at", "mailbox")


@admin.register(Draft)
class DraftAdmin(ReadOnlyAdmin):
    list_display = ("message", "status", "intent", "confidence", "decided_by", "created_at")
    list_filter = ("status", "intent")


@admin.register(Outbox)
class OutboxAdmin(ReadOnlyAdmin):
    """Every reply's delivery; a person decides failed or uncertain ones on the draft page."""

    list_display = ("message_id", "recipient", "state", "attempts", "sent_at", "mailbox")
    list_filter = ("state", "mailbox")
    search_fields = ("message_id", "recipient")
    exclude = ("raw",)


@admin.register(ReviewEvent)
class ReviewEventAdmin(ReadOnlyAdmin):
    list_display = ("draft", "action", "user", "created_at")
    list_filter = ("action",)


@admin.register(SamplingRule)
class SamplingRuleAdmin(admin.ModelAdmin):
    list_display = (
        *("name", "position", "intents", "temperature", "top_p", "max_new_tokens", "enabled"),
    )
    list_editable = ("position", "temperature", "top_p", "max_new_tokens", "enabled")
    list_display_links = ("name",)


@admin.register(BlockedSender)
class BlockedSenderAdmin(admin.ModelAdmin):
    """Senders whose mail is stored without a draft; deleting an entry unblocks them."""

    list_display = ("pattern", "mailbox", "note", "created_at", "created_by")
    list_filter = ("mailbox",)
    search_fields = ("pattern", "note")
    readonly_fields = ("created_at", "created_by")

    def save_model(self, request: HttpRequest, obj: BlockedSender, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(SavedReply)
class SavedReplyAdmin(admin.ModelAdmin):
    """Texts reviewers insert into replies; the count says which ones they really use."""

    list_display = ("title", "mailbox", "language", "intent", "is_active", "uses", "updated_at")
    list_filter = ("is_active", "mailbox", "language", "intent")
    search_fields = ("title", "text")
    readonly_fields = ("uses", "updated_at", "updated_by")

    def save_model(self, request: HttpRequest, obj: SavedReply, form, change: bool) -> None:
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


# Chat notification channels and their messages have their admin in a module of their own,
# as has account activity.
from drafts import account_activity_admin, notify_admin  # noqa: E402, F401
from drafts.api import admin as api_admin  # noqa: E402, F401  (API tokens and callbacks)


@admin.register(Erasure)
class ErasureAdmin(admin.ModelAdmin):
    """Erasing a customer's data on request (drafts/erasure.py), and the record of each one.

    "Add" is the erasure itself: an address, then a list of what would be erased, then a
    confirmation. The records cannot be changed or deleted."""

    list_display = ("created_at", "requested_by", "mailbox", "erased")
    readonly_fields = ("created_at", "requested_by", "address_sha256", "mailbox", "counts")

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Erased")
    def erased(self, record: Erasure) -> str:
        return ", ".join(f"{count} {kind}" for kind, count in record.counts.items() if count)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ErasureForm(request.POST or None, initial={"requested_by": request.user.username})
        found = None
        if request.method == "POST" and form.is_valid():
            try:
                found = erasure.plan(form.cleaned_data["address"], form.cleaned_data["mailbox"])
            except ValidationError as exc:
                form.add_error("address", exc.messages[0])
            else:
                if found.empty:
                    messages.info(
                        request,
                        _("Nothing is stored about %(address)s.") % {"address": found.address},
                    )
                    found = None
                elif "erase" in request.POST:
                    erasure.erase(found, form.cleaned_data["requested_by"])
                    messages.success(
                        request,
                        _(
                            "Erased everything stored about the address; the record keeps only "
                            "the counts and the address's SHA-256."
                        ),
                    )
                    return redirect("admin:drafts_erasure_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": _("Erase a customer's data"),
            "opts": self.model._meta,
            "form": form,
            "found": found,
        }
        return TemplateResponse(request, "admin/drafts/erasure/add.html", context)


class ErasureForm(forms.Form):
    address = forms.EmailField(
        label=gettext_lazy("Address"), help_text=gettext_lazy("The customer's email address.")
    )
    mailbox = forms.ModelChoiceField(
        Mailbox.objects.all(),
        required=False,
        label=gettext_lazy("Mailbox"),
        empty_label=gettext_lazy("every mailbox"),
    )
    requested_by = forms.CharField(
        max_length=150,
        label=gettext_lazy("Requested by"),
        help_text=gettext_lazy("Who asked for the erasure (kept in its record)."),
    )
