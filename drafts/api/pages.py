"""The page where a signed-in person makes and revokes their own API tokens.

A new token's secret is shown once, in the answer to the form that made it: it is not
stored anywhere (not even in the session), so it cannot be shown again.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from drafts.api.tokens import ApiToken


@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    """List the user's tokens; make one (showing its secret once) or revoke one."""
    context: dict[str, object] = {}
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create":
            name = request.POST.get("name", "").strip()
            access = request.POST.get("access", ApiToken.WRITE)
            if not name:
                messages.error(request, _("Give the token a name, e.g. what it is for."))
                return redirect("api_tokens")
            if access not in dict(ApiToken.ACCESS):
                access = ApiToken.WRITE
            token, secret = ApiToken.issue(request.user, name[:100], access)
            context = {"new_token": token, "secret": secret}
        elif action == "revoke":
            token = get_object_or_404(
                ApiToken.objects.filter(user=request.user), pk=request.POST.get("token") or 0
            )
            if token.revoke():
                messages.success(
                    request,
                    _("Token “%(name)s” revoked: it no longer works.") % {"name": token.name},
                )
            return redirect("api_tokens")
    context["tokens"] = ApiToken.objects.filter(user=request.user)
    context["access_choices"] = ApiToken.ACCESS
    context["api_base"] = request.build_absolute_uri(reverse("api_drafts")).rsplit("/", 1)[0]
    return render(request, "drafts/api_tokens.html", context)
