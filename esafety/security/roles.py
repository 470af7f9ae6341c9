"""Roles, permissions, and the one table that maps each permission to the roles allowed.

Every route and every service action names one :class:`Permission`; ``allowed()`` is the
only check. The role × route tests are generated from this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = [
    "PERMISSIONS",
    "STAFF_ROLES",
    "TWO_STEP_ROLES",
    "Permission",
    "Role",
    "allowed",
    "roles_allowed",
]


class Role(StrEnum):
    PUPIL = "pupil"
    PARENT = "parent"
    TEACHER = "teacher"
    TEACHING_ASSISTANT = "teaching_assistant"
    VOLUNTEER = "volunteer"
    VISITOR = "visitor"
    GOVERNOR = "governor"
    TECHNICIAN = "technician"
    OFFICE = "office"
    ONLINE_SAFETY_LEAD = "online_safety_lead"
    DEPUTY_DSL = "deputy_dsl"
    DSL = "dsl"
    HEADTEACHER = "headteacher"
    CHAIR_OF_GOVERNORS = "chair_of_governors"
    #: Trust or installation administrator: manages the installation, reads no safeguarding record.
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return _LABELS.get(self, self.value.replace("_", " ").capitalize())


_LABELS = {
    Role.DSL: "Designated safeguarding lead",
    Role.DEPUTY_DSL: "Deputy DSL",
    Role.ONLINE_SAFETY_LEAD: "Online safety lead",
    Role.TEACHING_ASSISTANT: "Teaching assistant",
    Role.CHAIR_OF_GOVERNORS: "Chair of governors",
    Role.OFFICE: "School office",
    Role.ADMIN: "Administrator",
    Role.TECHNICIAN: "IT technician",
}

#: Roles that can read safeguarding records or run the installation: two-step sign-in
#: is required (000 §4.1 "two step secure log-in").
TWO_STEP_ROLES = frozenset(
    {
        Role.ONLINE_SAFETY_LEAD,
        Role.DEPUTY_DSL,
        Role.DSL,
        Role.HEADTEACHER,
        Role.CHAIR_OF_GOVERNORS,
        Role.ADMIN,
    }
)

STAFF_ROLES = frozenset(
    {
        Role.TEACHER,
        Role.TEACHING_ASSISTANT,
        Role.TECHNICIAN,
        Role.OFFICE,
        Role.ONLINE_SAFETY_LEAD,
        Role.DEPUTY_DSL,
        Role.DSL,
        Role.HEADTEACHER,
    }
)

_SAFEGUARDING_LEADS = frozenset({Role.DSL, Role.DEPUTY_DSL, Role.HEADTEACHER})
_EVERYONE = frozenset(Role)
_ADULTS = _EVERYONE - {Role.PUPIL}
_SITE_REPORT_READERS = frozenset(
    {Role.TECHNICIAN, Role.ONLINE_SAFETY_LEAD, Role.DSL, Role.DEPUTY_DSL}
)
_FILTER_ALERT_READERS = frozenset({Role.DSL, Role.DEPUTY_DSL, Role.ONLINE_SAFETY_LEAD})
_CONCERN_RAISERS = STAFF_ROLES | {Role.VOLUNTEER, Role.GOVERNOR, Role.CHAIR_OF_GOVERNORS}


class Permission(StrEnum):
    #: Anyone, signed in or not (sign-in page, health check, static files).
    PUBLIC = "public"
    #: Any signed-in person: their home page, their own account.
    SIGNED_IN = "signed_in"
    VIEW_DIRECTORY = "view_directory"
    MANAGE_DIRECTORY = "manage_directory"
    IMPORT_ROSTER = "import_roster"
    VIEW_PUPIL_FLAGS = "view_pupil_flags"
    MANAGE_PUPIL_FLAGS = "manage_pupil_flags"
    VIEW_TECHNOLOGY_RESTRICTIONS = "view_technology_restrictions"
    MANAGE_TECHNOLOGY_RESTRICTIONS = "manage_technology_restrictions"
    VIEW_ACCESS_REGISTER = "view_access_register"
    MANAGE_ACCESS_REGISTER = "manage_access_register"
    VIEW_CALENDAR = "view_calendar"
    MANAGE_CALENDAR = "manage_calendar"
    RESET_PUPIL_PASSWORDS = "reset_pupil_passwords"
    MANAGE_ACCOUNTS = "manage_accounts"
    #: Turn off someone's two-step sign-in after a lost phone, so they enrol again.
    RESET_TWO_STEP = "reset_two_step"
    VIEW_AUDIT = "view_audit"
    MANAGE_OWN_TOKENS = "manage_own_tokens"
    #: See the filter's lists, policies and assignments.
    VIEW_FILTERING = "view_filtering"
    #: Import and update lists, assign policies, the school's own entries, subnets.
    MANAGE_FILTER_LISTS = "manage_filter_lists"
    #: Ask the filter what it would do for a site (issue 4 §10 ``filter check``).
    CHECK_FILTER = "check_filter"
    #: Tell the filter who is using a device (a proxy, device agent or MDM's token).
    RECORD_SIGN_INS = "record_sign_ins"
    #: Report a site that should be blocked or is wrongly blocked (003 §7.3.2, 004).
    REPORT_SITES = "report_sites"
    #: Read the reports of sites (over- and under-blocking, 003 §7.3.1).
    VIEW_SITE_REPORTS = "view_site_reports"
    #: Close a report of a site with what was done.
    RESOLVE_SITE_REPORTS = "resolve_site_reports"
    #: Ask for a site to be unblocked for a lesson (001 "auditable, with clear reasons").
    REQUEST_UNBLOCK = "request_unblock"
    #: See unblock requests and exceptions: one's own, those to approve, and (for those who
    #: may read the filter change log) every one.
    VIEW_UNBLOCK_REQUESTS = "view_unblock_requests"
    #: Approve or refuse unblock requests; checked again against the school's approver
    #: setting (headteacher by default, 000 §5) when it is used.
    APPROVE_UNBLOCK = "approve_unblock"
    #: Read the filter change log (002 §7.3, 003 §7.3.1: governors read it).
    VIEW_FILTER_CHANGES = "view_filter_changes"
    #: Change the school's filter settings (who approves unblock requests, warnings).
    MANAGE_FILTER_SETTINGS = "manage_filter_settings"
    #: Read the filter's alerts to the DSL (blocks in alerting categories, issue 4 §8).
    VIEW_FILTER_ALERTS = "view_filter_alerts"
    #: Mark a filter alert as seen and dealt with.
    ACKNOWLEDGE_FILTER_ALERTS = "acknowledge_filter_alerts"
    #: Scrape ``/metrics`` (Prometheus, with an API token): counters, no personal data.
    VIEW_METRICS = "view_metrics"
    #: Record a safeguarding concern (issue 5 §1; KCSIE: every adult who works with pupils).
    RECORD_CONCERNS = "record_concerns"
    #: Open a concern: the access rules then decide which (their own, their role's kinds,
    #: break glass; esafety.safeguarding.access).
    VIEW_CONCERNS = "view_concerns"
    #: Record steps, notes, changes and closing on concerns their role reads.
    ACT_ON_CONCERNS = "act_on_concerns"
    #: Read a concern one may not otherwise read, with a written reason that alerts the DSL.
    BREAK_GLASS = "break_glass"
    #: Choose the kinds of concern the online safety lead reads (issue 5 §3).
    MANAGE_SAFEGUARDING_SETTINGS = "manage_safeguarding_settings"
    #: Export everything held about a person for a subject access request (UK GDPR Art.
    #: 15; STANDARDS R13): the DSL or the headteacher, for the data protection officer.
    EXPORT_SUBJECT_ACCESS = "export_subject_access"
    #: See trends in concerns: counts by kind, month, year group, location (002 §1.2.2);
    #: what each role sees (names, small numbers) is decided in safeguarding.trends.
    VIEW_CONCERN_TRENDS = "view_concern_trends"


PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.PUBLIC: _EVERYONE,
    Permission.SIGNED_IN: _EVERYONE,
    Permission.VIEW_DIRECTORY: STAFF_ROLES | {Role.ADMIN},
    Permission.MANAGE_DIRECTORY: frozenset({Role.OFFICE, Role.HEADTEACHER, Role.ADMIN}),
    Permission.IMPORT_ROSTER: frozenset({Role.OFFICE, Role.ADMIN}),
    Permission.VIEW_PUPIL_FLAGS: _SAFEGUARDING_LEADS,
    Permission.MANAGE_PUPIL_FLAGS: frozenset({Role.DSL, Role.DEPUTY_DSL}),
    # 000 §4.5: the list of children who may not use technology is visible to all staff.
    Permission.VIEW_TECHNOLOGY_RESTRICTIONS: STAFF_ROLES | {Role.VOLUNTEER},
    Permission.MANAGE_TECHNOLOGY_RESTRICTIONS: _SAFEGUARDING_LEADS | {Role.ONLINE_SAFETY_LEAD},
    Permission.VIEW_ACCESS_REGISTER: frozenset(
        {Role.TECHNICIAN, Role.ONLINE_SAFETY_LEAD, Role.HEADTEACHER, Role.DSL, Role.ADMIN}
    ),
    Permission.MANAGE_ACCESS_REGISTER: frozenset(
        {Role.TECHNICIAN, Role.ONLINE_SAFETY_LEAD, Role.ADMIN}
    ),
    Permission.VIEW_CALENDAR: _ADULTS - {Role.PARENT, Role.VISITOR},
    Permission.MANAGE_CALENDAR: frozenset({Role.OFFICE, Role.HEADTEACHER, Role.ADMIN}),
    Permission.RESET_PUPIL_PASSWORDS: frozenset(
        {Role.TEACHER, Role.TEACHING_ASSISTANT, Role.TECHNICIAN, Role.ADMIN}
    ),
    Permission.MANAGE_ACCOUNTS: frozenset({Role.TECHNICIAN, Role.ADMIN}),
    # The second step guards safeguarding records; only an administrator may take it away
    # (000 §4.1 "two step secure log-in").
    Permission.RESET_TWO_STEP: frozenset({Role.ADMIN}),
    Permission.VIEW_AUDIT: frozenset(
        {Role.HEADTEACHER, Role.DSL, Role.ADMIN, Role.CHAIR_OF_GOVERNORS}
    ),
    Permission.MANAGE_OWN_TOKENS: STAFF_ROLES | {Role.ADMIN},
    Permission.VIEW_FILTERING: STAFF_ROLES | {Role.ADMIN, Role.CHAIR_OF_GOVERNORS},
    Permission.MANAGE_FILTER_LISTS: frozenset(
        {Role.TECHNICIAN, Role.ADMIN, Role.ONLINE_SAFETY_LEAD}
    ),
    Permission.CHECK_FILTER: STAFF_ROLES | {Role.ADMIN},
    Permission.RECORD_SIGN_INS: frozenset({Role.TECHNICIAN, Role.ADMIN}),
    # Everyone who works with pupils reports sites (PRODUCT: volunteers too).
    Permission.REPORT_SITES: STAFF_ROLES | {Role.VOLUNTEER, Role.ADMIN},
    # 004 "reported to the Online Safety Coordinator and/or the ICT Technician"; issue 4
    # §9: reports reach the technician and the DSL.
    Permission.VIEW_SITE_REPORTS: _SITE_REPORT_READERS,
    Permission.RESOLVE_SITE_REPORTS: _SITE_REPORT_READERS,
    Permission.REQUEST_UNBLOCK: STAFF_ROLES,
    Permission.VIEW_UNBLOCK_REQUESTS: STAFF_ROLES
    | {Role.GOVERNOR, Role.CHAIR_OF_GOVERNORS, Role.ADMIN},
    # The roles a school may name as its approver (000 §5: the headteacher by default).
    Permission.APPROVE_UNBLOCK: frozenset(
        {Role.HEADTEACHER, Role.DSL, Role.DEPUTY_DSL, Role.ONLINE_SAFETY_LEAD}
    ),
    Permission.VIEW_FILTER_CHANGES: frozenset(
        {
            Role.GOVERNOR,
            Role.CHAIR_OF_GOVERNORS,
            Role.HEADTEACHER,
            Role.DSL,
            Role.DEPUTY_DSL,
            Role.ONLINE_SAFETY_LEAD,
            Role.TECHNICIAN,
            Role.ADMIN,
        }
    ),
    Permission.MANAGE_FILTER_SETTINGS: frozenset({Role.HEADTEACHER, Role.ADMIN}),
    # KCSIE: the DSL (and deputies) act on online-safety signals; the online safety lead
    # oversees filtering and monitoring (003 §7.3).
    Permission.VIEW_FILTER_ALERTS: _FILTER_ALERT_READERS,
    Permission.ACKNOWLEDGE_FILTER_ALERTS: _FILTER_ALERT_READERS,
    Permission.VIEW_METRICS: frozenset({Role.TECHNICIAN, Role.ADMIN}),
    # Issue 5 §1, KCSIE part 1: every adult working with pupils records concerns; `admin`
    # reads none (§3), so it records none it could not read back.
    Permission.RECORD_CONCERNS: _CONCERN_RAISERS,
    Permission.VIEW_CONCERNS: _CONCERN_RAISERS,
    Permission.ACT_ON_CONCERNS: _SAFEGUARDING_LEADS
    | {Role.ONLINE_SAFETY_LEAD, Role.CHAIR_OF_GOVERNORS},
    Permission.BREAK_GLASS: STAFF_ROLES,
    Permission.MANAGE_SAFEGUARDING_SETTINGS: frozenset({Role.DSL, Role.HEADTEACHER}),
    # Those who read safeguarding records answer subject access requests with the DPO; a
    # deputy does not, and `admin` reads no safeguarding record (issue 5 §3, §8).
    Permission.EXPORT_SUBJECT_ACCESS: frozenset({Role.DSL, Role.HEADTEACHER}),
    # 002 §1.2.1-1.2.2: the DSL monitors incidents for trends and reports them to the
    # management team and the governing body; 004: the incident log is used to spot patterns.
    Permission.VIEW_CONCERN_TRENDS: _SAFEGUARDING_LEADS
    | {Role.ONLINE_SAFETY_LEAD, Role.GOVERNOR, Role.CHAIR_OF_GOVERNORS},
}


def roles_allowed(permission: Permission) -> frozenset[Role]:
    return PERMISSIONS[permission]


def allowed(roles: Iterable[str], permission: Permission) -> bool:
    permitted = PERMISSIONS[permission]
    return any(role in permitted for role in roles)


def needs_two_step(roles: Iterable[str]) -> bool:
    return any(role in TWO_STEP_ROLES for role in roles)
