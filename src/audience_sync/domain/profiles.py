"""A profile's columns, as the import prepares them and the store writes them.

`sources.prepare` makes batches of profiles as Polars frames; `store.profile_writer` writes them.
Both name the columns from here, so neither depends on the other's module.
"""

from __future__ import annotations

from audience_sync.domain.data_use import CONSENT_FIELDS, LDU_COLUMN

# The enhanced-matching fields of a profile, stored as imported.
PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "city",
    "state",
    "zip",
    "country",
    "date_of_birth",
    "gender",
)
# What the member allows (`domain.data_use`).
DATA_USE_COLUMNS = (*CONSENT_FIELDS, LDU_COLUMN)
# Every field column of a profile row, in the order the writer binds them.
FIELD_COLUMNS = (*PROFILE_FIELDS, *DATA_USE_COLUMNS)
# Columns a batch carries besides the profile's own: where each row came from in the file
# (its first and last line) and its index in the batch.
LINE = "_line"
END_LINE = "_end_line"
ROW = "_row"
