"""The REST API under /api/v1/: token authentication, JSON views and their OpenAPI schema.

``tokens`` and ``callbacks`` hold models (imported at the bottom of drafts/models.py);
``http`` the plumbing every endpoint shares (authentication, rate limit, errors);
``views`` the endpoints; ``schema`` their OpenAPI description; ``pages`` the browser page
where people manage their own tokens.
"""
