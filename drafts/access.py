"""Who may see what: reviewers their mailboxes' mail, supervisors and admins all of it.

Every view looks objects up through these querysets, so an id from another mailbox is a
404, exactly like an id that does not exist: guessing ids reveals nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse

from drafts.models import ADMIN_GROUP, Attachment, Draft, Mailbox, Message, StaffProfile


def sees_all_mailboxes(user: object) -> bool:
    """Supervisors and admins see every mailbox; reviewers only their own."""
    return StaffProfile.role_of(user) in (StaffProfile.SUPERVISOR, StaffProfile.ADMIN)


def mailboxes_for(user: object) -> QuerySet[Mailbox]:
    if sees_all_mailboxes(user):
        return Mailbox.objects.all()
    return Mailbox.objects.filter(reviewers=user)


def messages_for(user: object) -> QuerySet[Message]:
    if sees_all_mailboxes(user):
        return Message.objects.all()
    return Message.objects.filter(mailbox__reviewers=user)


def drafts_for(user: object) -> QuerySet[Draft]:
    if sees_all_mailboxes(user):
        return Draft.objects.all()
    return Draft.objects.filter(mailbox__reviewers=user)


def attachments_for(user: object) -> QuerySet[Attachment]:
    if sees_all_mailboxes(user):
        return Attachment.objects.all()
    return Attachment.objects.filter(message__mailbox__reviewers=user)


def reviewers_of(mailbox: Mailbox | QuerySet[Mailbox]) -> QuerySet:
    """Who may answer ``mailbox``'s mail (or that of any of several): its reviewers,
    supervisors and admins."""
    several = isinstance(mailbox, QuerySet)
    staff = Q(review_mailboxes__in=mailbox) if several else Q(review_mailboxes=mailbox)
    staff |= Q(is_superuser=True)
    staff |= Q(profile__role__in=[StaffProfile.SUPERVISOR, StaffProfile.ADMIN])
    return get_user_model().objects.filter(staff, is_active=True).distinct().order_by("username")


# What the admin role may do in the Django admin; everything else there is read-only.
ADMIN_PERMISSIONS = {
    "drafts": {
        "mailbox": ("add", "change", "delete", "view"),
        "prompttemplate": ("add", "change", "view"),
        "samplingrule": ("add", "change", "delete", "view"),
        "savedreply": ("add", "change", "delete", "view"),
        "blockedsender": ("add", "change", "delete", "view"),
        "calendarday": ("add", "change", "delete", "view"),
        "staffprofile": ("add", "change", "view"),
        "draft": ("view",),
        "message": ("view",),
        "thread": ("view",),
        "reviewevent": ("view",),
        "outbox": ("view",),
        "notificationchannel": ("add", "change", "delete", "view"),
        "notification": ("view",),
        "erasure": ("add", "view"),  # a customer's data erased on request
        "signedinsession": ("view",),  # on a user's page; signing out is a user action
        "accountevent": ("view",),  # sign-ins and failed attempts, to read
    },
    "auth": {"user": ("add", "change", "view")},
}


def admin_group() -> Group:
    """The group that gives the admin role its permissions, created and kept up to date."""
    group, _ = Group.objects.get_or_create(name=ADMIN_GROUP)
    wanted = Q(pk__in=[])
    for app_label, models in ADMIN_PERMISSIONS.items():
        for model, actions in models.items():
            codenames = [f"{action}_{model}" for action in actions]
            wanted |= Q(content_type__app_label=app_label, codename__in=codenames)
    group.permissions.set(Permission.objects.filter(wanted))
    return group


def supervisor_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Only supervisors and admins (e.g. the stats); reviewers get 403."""

    @login_required
    @wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not sees_all_mailboxes(request.user):
            raise PermissionDenied("Supervisors only.")
        return view(request, *args, **kwargs)

    return guarded
