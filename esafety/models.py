"""Imports every slice's tables so that the metadata (and Alembic) sees them all."""

from esafety.audit import AuditEntry, AuditHead
from esafety.directory.model import (
    AccessGrant,
    Closure,
    Group,
    GroupMembership,
    ParentLink,
    Person,
    PersonRole,
    PupilFlag,
    RosterImport,
    School,
    TechnologyRestriction,
    Term,
)
from esafety.scheduler import ScheduledJob
from esafety.security.model import Account, ApiToken, PasswordHistory, RecoveryCode, WebSession

__all__ = [
    "AccessGrant",
    "Account",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "Closure",
    "Group",
    "GroupMembership",
    "ParentLink",
    "PasswordHistory",
    "Person",
    "PersonRole",
    "PupilFlag",
    "RecoveryCode",
    "RosterImport",
    "ScheduledJob",
    "School",
    "TechnologyRestriction",
    "Term",
    "WebSession",
]
