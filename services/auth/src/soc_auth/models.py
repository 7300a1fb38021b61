"""Every table of the service, imported once so that ``metadata`` is complete (migrations, tests)."""

from soc_auth.audit.models import login_attempt
from soc_auth.company.models import company, directory_group
from soc_auth.database import metadata
from soc_auth.login.models import login_throttle
from soc_auth.mfa.models import mfa_challenge, mfa_factor, mfa_recovery_code
from soc_auth.oidc.models import oidc_login, oidc_session
from soc_auth.outbox.models import outbox
from soc_auth.preference.models import user_preference
from soc_auth.role.models import role, role_permission, user_role
from soc_auth.token.models import refresh_token, signing_key
from soc_auth.user.models import users

__all__ = [
    "company",
    "directory_group",
    "login_attempt",
    "login_throttle",
    "metadata",
    "mfa_challenge",
    "mfa_factor",
    "mfa_recovery_code",
    "oidc_login",
    "oidc_session",
    "outbox",
    "refresh_token",
    "role",
    "role_permission",
    "signing_key",
    "user_preference",
    "user_role",
    "users",
]
