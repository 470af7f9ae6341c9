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
from esafety.mail import OutgoingMail
from esafety.notices import Notice
from esafety.safeguarding.actions_model import ConcernAction, ConcernActionEnd
from esafety.safeguarding.alert_concerns_model import ConcernFromAlert
from esafety.safeguarding.model import (
    BreakGlassRead,
    Concern,
    ConcernAttachment,
    ConcernEntry,
    ConcernPerson,
    SafeguardingSettings,
    StepEntry,
)
from esafety.safeguarding.retention_model import DeletionRecord, LegalHold, RetentionSettings
from esafety.safeguarding.transfer_model import (
    ImportedConcern,
    PupilTransfer,
    TransferEntry,
    TransferImport,
)
from esafety.safeguarding.whisper_model import WorryMessage, WorryReport
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
    "ConcernAction",
    "ConcernActionEnd",
    "ConcernAttachment",
    "ConcernEntry",
    "ConcernFromAlert",
    "ConcernPerson",
    "CustomPolicy",
    "DeletionRecord",
    "FilterAlert",
    "FilterList",
    "Group",
    "GroupMembership",
    "ImportedConcern",
    "LegalHold",
    "Notice",
    "OutgoingMail",
    "ParentLink",
    "PasswordHistory",
    "Person",
    "PersonRole",
    "PolicyAssignment",
    "PupilFlag",
    "PupilTransfer",
    "RecoveryCode",
    "RetentionSettings",
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
    "TransferEntry",
    "TransferImport",
    "UnblockRequest",
    "WebSession",
    "WorryMessage",
    "WorryReport",
]
