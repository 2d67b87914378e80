"""Top-level URL configuration."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from drafts import health, metrics
from drafts.login import RateLimitedLoginView, admin_login, login_code

urlpatterns = [
    # Probes and Prometheus: no login, no trailing slash (docs/operations.md).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    # The admin's own login would check passwords without our lock and two-step verification.
    path("admin/login/", admin_login, name="admin_login"),
    path("admin/", admin.site.urls),
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/login/code/", login_code, name="login_code"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("drafts.api.urls")),  # /api/v1/… and /account/tokens/ (docs/api.md)
    path("", include("drafts.urls")),
]
