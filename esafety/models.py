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
from esafety.filtering.alerts_model import FilterAlert
from esafety.filtering.model import (
    ClientSignIn,
    FilterList,
    PolicyAssignment,
    SchoolFilterEntry,
    SchoolFilterList,
    SubnetMapping,
)
from esafety.filtering.reports_model import SiteReport
from esafety.filtering.requests_model import CustomPolicy, SchoolFilterSettings, UnblockRequest
from esafety.notices import Notice
from esafety.safeguarding.model import (
    BreakGlassRead,
    Concern,
    ConcernAttachment,
    ConcernEntry,
    ConcernPerson,
    SafeguardingSettings,
    StepEntry,
)
from esafety.scheduler import ScheduledJob
from esafety.security.model import Account, ApiToken, PasswordHistory, RecoveryCode, WebSession

__all__ = [
    "AccessGrant",
    "Account",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "BreakGlassRead",
    "ClientSignIn",
    "Closure",
    "Concern",
    "ConcernAttachment",
    "ConcernEntry",
    "ConcernPerson",
    "CustomPolicy",
    "FilterAlert",
    "FilterList",
    "Group",
    "GroupMembership",
    "Notice",
    "ParentLink",
    "PasswordHistory",
    "Person",
    "PersonRole",
    "PolicyAssignment",
    "PupilFlag",
    "RecoveryCode",
    "RosterImport",
    "SafeguardingSettings",
    "ScheduledJob",
    "School",
    "SchoolFilterEntry",
    "SchoolFilterList",
    "SchoolFilterSettings",
    "SiteReport",
    "StepEntry",
    "SubnetMapping",
    "TechnologyRestriction",
    "Term",
    "UnblockRequest",
    "WebSession",
]
