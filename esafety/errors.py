"""The one tree of esafety's exceptions.

    EsafetyError                 anything esafety reports to a person instead of a traceback
    ├── ConfigError              a setting is wrong (names the setting and what is allowed)
    ├── NotFound                 the thing named does not exist (or is not visible to you)
    ├── InvalidInput             a form, API body or argument is wrong (says what to fix)
    │   └── RosterProblems       a roster file has problems (every one, as file:line)
    ├── PermissionDenied         the actor's roles do not allow this (says which role would)
    ├── AuthenticationFailed     not signed in, wrong password, bad code, locked account
    └── IntegrityError           stored data fails a check (the audit chain, a key)

Every message names the action, the bad value and the rule, so a person can fix it.
Library exceptions are translated at the edges (CLI, web) into these.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "ConfigError",
    "EsafetyError",
    "IntegrityError",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
]


class EsafetyError(Exception):
    """Base of every error esafety reports to a person."""

    #: HTTP status the web layer answers with.
    status_code = 400


class ConfigError(EsafetyError):
    status_code = 500


class NotFound(EsafetyError):
    status_code = 404


class InvalidInput(EsafetyError):
    status_code = 422


class PermissionDenied(EsafetyError):
    status_code = 403


class AuthenticationFailed(EsafetyError):
    status_code = 401


class IntegrityError(EsafetyError):
    status_code = 500
