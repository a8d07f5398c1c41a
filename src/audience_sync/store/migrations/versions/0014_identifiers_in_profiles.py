"""A profile's identifiers move into the profile's own row: `profiles.identifiers`, one text
(the format: `store.stored_identifiers`); the table `profile_identifiers` goes.

Why: a row per identifier was most of an import's time (a million profiles write ~3 million
identifiers: ~4.5 µs a row on SQLite, ~10 µs on PostgreSQL with its two foreign-key checks a
row), and nothing reads identifiers but per profile.

The texts are built in SQL, each profile's identifiers in the order of their ids. The format is
written out here rather than imported, so this migration keeps working if the code changes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FIELD, RECORD, ESCAPE = "\x1f", "\x1e", "\x1b"
# One identifier's text: type, escaped value, e164, kind (`stored_identifiers.encode`).
ITEM_SQL = (
    "i.type || {f} || replace(replace(replace(i.value, {e}, {e} || {e}), {f}, {e} || '_'), "
    "{r}, {e} || '^') || {f} || coalesce(i.e164, '') || {f} || coalesce(i.kind, '')"
)
# SQLite 3.40 has no `ORDER BY` inside `group_concat`: it concatenates in the order the
# subquery's rows come, which its `ORDER BY` fixes.
SQLITE_FILL = (
    "UPDATE profiles SET identifiers = coalesce((SELECT group_concat(item, char(30)) FROM "  # noqa: S608
    "(SELECT " + ITEM_SQL.format(f="char(31)", r="char(30)", e="char(27)") + " AS item "
    "FROM profile_identifiers i WHERE i.profile_pk = profiles.id ORDER BY i.id)), '')"
)
POSTGRES_FILL = (
    "UPDATE profiles SET identifiers = coalesce((SELECT string_agg("  # noqa: S608
    + ITEM_SQL.format(f="chr(31)", r="chr(30)", e="chr(27)")
    + ", chr(30) ORDER BY i.id) FROM profile_identifiers i WHERE i.profile_pk = profiles.id), '')"
)


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identifiers", sa.Text(), server_default="", nullable=False))
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(POSTGRES_FILL if postgres else SQLITE_FILL)
    with op.batch_alter_table("profile_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_identifiers_profile_pk"))
    op.drop_table("profile_identifiers")


def downgrade() -> None:
    _create_identifiers_table()
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, tenant_id, identifiers FROM profiles ORDER BY id"))
    insert = sa.text(
        "INSERT INTO profile_identifiers (tenant_id, profile_pk, type, value, e164, kind) "
        "VALUES (:tenant_id, :profile_pk, :type, :value, :e164, :kind)"
    )
    batch: list[dict[str, object]] = []
    for pk, tenant_id, text in rows.fetchall():
        batch.extend(_items(pk, tenant_id, text))
        if len(batch) >= 10_000:
            bind.execute(insert, batch)
            batch = []
    if batch:
        bind.execute(insert, batch)
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_column("identifiers")


def _items(pk: int, tenant_id: int, text: str) -> list[dict[str, object]]:
    found = []
    for item in text.split(RECORD) if text else []:
        kind, value, e164, mobile = item.split(FIELD)
        found.append(
            {
                "tenant_id": tenant_id,
                "profile_pk": pk,
                "type": kind,
                "value": _unescape(value),
                "e164": e164 or None,
                "kind": mobile or None,
            }
        )
    return found


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for char in chars:
        if char == ESCAPE:
            char = {"_": FIELD, "^": RECORD}.get(next(chars), ESCAPE)
        out.append(char)
    return "".join(out)


def _create_identifiers_table() -> None:
    op.create_table(
        "profile_identifiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column(
            "profile_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "type",
            sa.Enum(
                "email",
                "phone",
                "mobile_id",
                "external_id",
                name="identifier_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "idfa",
                "gaid",
                name="mobile_id_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["profile_pk"],
            ["profiles.id"],
            name=op.f("fk_profile_identifiers_profile_pk_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_profile_identifiers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_identifiers")),
    )
    with op.batch_alter_table("profile_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profile_identifiers_profile_pk"), ["profile_pk"], unique=False
        )
