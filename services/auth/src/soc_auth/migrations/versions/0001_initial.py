"""The auth schema: users, roles, tokens, signing keys, login audit and throttle, company
group mappings, preferences, outbox.

Revision ID: 0001_initial
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

ROLES = [
    (1, "SUPER_ADMIN", "admin", "Everything, including administrators and signing keys"),
    (2, "ADMIN", "admin", "Administers companies, integrations and tenant users"),
    (3, "READ_ONLY_ADMIN", "admin", "Sees everything an administrator sees, changes nothing"),
    (4, "USER", "base", "A portal user (every tenant user holds it)"),
    (5, "TENANT_ADMIN", "tenant", "Manages the users of its own company"),
    (6, "TENANT_USER", "tenant", "Uses the portal for its own company"),
]
PERMISSIONS = {
    "DASHBOARD": "Dashboard",
    "REPORTS": "Reports",
    "THREAT_INTELLIGENCE": "Threat Intelligence",
    "ASSETS": "Assets",
}
ROLE_PERMISSIONS = {
    1: list(PERMISSIONS),
    2: list(PERMISSIONS),
    3: list(PERMISSIONS),
    5: list(PERMISSIONS),
    6: ["DASHBOARD", "REPORTS"],
}


def _ts(name: str, nullable: bool = True, default: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.text("now()") if default else None,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("full_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("auth_source", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text()),
        sa.Column("directory_dn", sa.Text()),
        sa.Column(
            "directory_groups", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")
        ),
        sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_tenant", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled_by_company", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("company_id", sa.String(64)),
        sa.Column(
            "permissions", postgresql.ARRAY(sa.String(32)), nullable=False, server_default=sa.text("'{}'")
        ),
        sa.Column("created_by", sa.Uuid()),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        _ts("deleted_at"),
        _ts("last_login_at"),
        _ts("password_changed_at"),
        _ts("directory_synced_at"),
        sa.CheckConstraint("auth_source IN ('local', 'ldap')", name="ck_users_auth_source"),
        sa.CheckConstraint("NOT (is_admin AND is_tenant)", name="ck_users_one_kind"),
        sa.CheckConstraint("NOT is_tenant OR company_id IS NOT NULL", name="ck_users_tenant_has_company"),
    )
    op.create_index("ux_users_username", "users", [sa.text("lower(username)")], unique=True)
    op.create_index(
        "ux_users_email",
        "users",
        [sa.text("lower(email)")],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL"),
    )
    op.create_index("ix_users_company_id", "users", ["company_id"])
    op.create_index("ix_users_created_at", "users", ["created_at"])

    op.create_table(
        "role",
        sa.Column("id", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(32), nullable=False, unique=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
    )
    op.create_table(
        "role_permission",
        sa.Column(
            "role_id", sa.SmallInteger(), sa.ForeignKey("role.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("permission", sa.String(32), primary_key=True),
        sa.Column("permission_text", sa.String(64), nullable=False),
    )
    op.create_table(
        "user_role",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role_id", sa.SmallInteger(), sa.ForeignKey("role.id"), primary_key=True),
    )
    role_table = sa.table(
        "role",
        sa.column("id", sa.SmallInteger()),
        sa.column("name", sa.String()),
        sa.column("scope", sa.String()),
        sa.column("description", sa.String()),
    )
    op.bulk_insert(role_table, [{"id": i, "name": n, "scope": s, "description": d} for i, n, s, d in ROLES])
    grant_table = sa.table(
        "role_permission",
        sa.column("role_id", sa.SmallInteger()),
        sa.column("permission", sa.String()),
        sa.column("permission_text", sa.String()),
    )
    op.bulk_insert(
        grant_table,
        [
            {"role_id": r, "permission": p, "permission_text": PERMISSIONS[p]}
            for r, perms in ROLE_PERMISSIONS.items()
            for p in perms
        ],
    )

    op.create_table(
        "signing_key",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False, server_default="EdDSA"),
        sa.Column("public_jwk", postgresql.JSONB(), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        _ts("created_at", nullable=False, default=True),
        _ts("retired_at"),
    )
    op.create_table(
        "refresh_token",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        _ts("issued_at", nullable=False, default=True),
        _ts("expires_at", nullable=False),
        _ts("spent_at"),
        _ts("revoked_at"),
        sa.Column("revoked_reason", sa.String(32)),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(512)),
    )
    op.create_index("ix_refresh_token_family_id", "refresh_token", ["family_id"])
    op.create_index("ix_refresh_token_user_id", "refresh_token", ["user_id"])
    op.create_index("ix_refresh_token_expires_at", "refresh_token", ["expires_at"])

    op.create_table(
        "login_attempt",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        _ts("at", nullable=False, default=True),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(512)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("endpoint", sa.String(16), nullable=False, server_default="login"),
        sa.CheckConstraint("outcome IN ('succeeded', 'failed')", name="ck_login_attempt_outcome"),
    )
    op.create_index("ix_login_attempt_at", "login_attempt", ["at"])
    op.create_index("ix_login_attempt_username_at", "login_attempt", [sa.text("lower(username)"), "at"])
    op.create_index("ix_login_attempt_user_id_at", "login_attempt", ["user_id", "at"])

    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        _ts("first_failure_at", nullable=False),
        _ts("last_failure_at", nullable=False),
        _ts("locked_until"),
    )

    op.create_table(
        "company",
        sa.Column("company_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        _ts("changed_at", nullable=False),
    )
    op.create_table(
        "directory_group",
        sa.Column(
            "company_id",
            sa.String(64),
            sa.ForeignKey("company.company_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("group_key", sa.String(512), primary_key=True),
        sa.Column("ldap_group", sa.Text(), nullable=False),
        sa.Column("tenant_role", sa.String(32), nullable=False),
        sa.Column(
            "permissions", postgresql.ARRAY(sa.String(32)), nullable=False, server_default=sa.text("'{}'")
        ),
    )
    op.create_index("ix_directory_group_group_key", "directory_group", ["group_key"])

    op.create_table(
        "user_preference",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        _ts("updated_at", nullable=False, default=True),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("routing_key", sa.String(128), nullable=False),
        sa.Column("event", postgresql.JSONB(), nullable=False),
        _ts("created_at", nullable=False, default=True),
    )


def downgrade() -> None:
    for table in (
        "outbox",
        "user_preference",
        "directory_group",
        "company",
        "login_throttle",
        "login_attempt",
        "refresh_token",
        "signing_key",
        "user_role",
        "role_permission",
        "role",
        "users",
    ):
        op.drop_table(table)
