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
from esafety.filtering.model import (
    ClientSignIn,
    FilterList,
    PolicyAssignment,
    SchoolFilterEntry,
    SchoolFilterList,
    SubnetMapping,
)
from esafety.scheduler import ScheduledJob
from esafety.security.model import Account, ApiToken, PasswordHistory, RecoveryCode, WebSession

__all__ = [
    "AccessGrant",
    "Account",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "ClientSignIn",
    "Closure",
    "FilterList",
    "Group",
    "GroupMembership",
    "ParentLink",
    "PasswordHistory",
    "Person",
    "PersonRole",
    "PolicyAssignment",
    "PupilFlag",
    "RecoveryCode",
    "RosterImport",
    "ScheduledJob",
    "School",
    "SchoolFilterEntry",
    "SchoolFilterList",
    "SubnetMapping",
    "TechnologyRestriction",
    "Term",
    "WebSession",
]
