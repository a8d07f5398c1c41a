"""National phone numbers read to E.164 without libphonenumber, where its reading is certain.

libphonenumber costs ~20 µs a number and an import of a million rows parses ~600,000 of them:
most of its time. A national number (`020 7946 0958` in GB, `(415) 555-0123` in US) is read by
libphonenumber in a few steps that depend only on its region's metadata: drop the punctuation,
strip the national (trunk) prefix under conditions, and prefix the country calling code. Where
those steps are plain, `with_national_e164` takes them column-wise, and the result is accepted
only if `bulk.is_stored_e164` says libphonenumber would keep that `+` number exactly as written
and call it possible — the check the stored-E.164 shortcut uses. Every other number is parsed.

What is left to libphonenumber (a null here), to stay exactly its answer:
- regions whose national prefix rule rewrites the number (a transform rule: AR, BR, MX's old
  mobile prefixes, JP, …);
- numbers starting with `00` (international wherever they are written, by our own rule), the
  region's international dialling prefix (`011` in US) or its own country code (`1 415 …` in
  US, `44 20 …` in GB: libphonenumber may read them as international);
- anything but ASCII digits and ` ().-`, or fewer than three digits.

The steps follow `phonenumberutil._parse_helper` and `_maybe_strip_national_prefix_carrier_code`
of the Python port (github.com/daviddrysdale/python-phonenumbers): the prefix is stripped when
the region's `national_prefix_for_parsing` matches at the start, unless the number with it fits
the region's general pattern and the number without it does not; the strip is kept only if the
rest's length tests `IS_POSSIBLE` or `TOO_LONG` for the region (else the number is kept whole;
those cases are left to libphonenumber here). `tests/unit/identifiers/test_national.py` compares
every answer with libphonenumber's on generated numbers of every region this covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata

from audience_sync.identifiers.bulk import is_stored_e164
from audience_sync.identifiers.phone import resolve_region

# Only ASCII digits and the punctuation libphonenumber drops (no letters, no extension).
NATIONAL_SHAPE = r"^[0-9 ().-]+$"
# The punctuation libphonenumber drops while parsing (the `+` shortcut in `sources.phones` too).
PUNCTUATION = r"[ ().-]"
# libphonenumber refuses longer input (_MAX_INPUT_STRING_LENGTH); with three digits or more, any
# value of this shape is "viable" to it (VALID_PHONE_NUMBER), with two only if they touch.
_MAX_INPUT = 250
_MIN_DIGITS = 3


@dataclass(frozen=True, slots=True)
class NationalRule:
    """What libphonenumber's reading of a national number depends on, for one region."""

    code: str  # the country calling code
    prefix: str | None  # `national_prefix_for_parsing` (a regex), None when the region has none
    general: str  # the general description's national number pattern
    lengths: frozenset[int]  # lengths testing IS_POSSIBLE for the region (not local-only)
    idd: str | None  # the international dialling prefix (a regex)


@cache
def national_rules() -> dict[str, NationalRule]:
    """The regions whose national numbers `with_national_e164` reads (built once, a few ms)."""
    rules = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        if resolve_region(region) != region:  # not a country of ours (AC, TA, XK): read as US
            continue
        metadata = PhoneMetadata.metadata_for_region(region)
        rule = _rule(metadata) if metadata is not None else None
        if rule is not None and _compiles(rule):
            rules[region] = rule
    return rules


def _rule(metadata: PhoneMetadata) -> NationalRule | None:
    general = metadata.general_desc
    if metadata.national_prefix_transform_rule or general is None:
        return None
    if general.national_number_pattern is None or not general.possible_length:
        return None
    local = set(general.possible_length_local_only or ())
    return NationalRule(
        code=str(metadata.country_code),
        prefix=metadata.national_prefix_for_parsing or None,
        general=general.national_number_pattern,
        lengths=frozenset(n for n in general.possible_length if n > 0 and n not in local),
        idd=metadata.international_prefix or None,
    )


def _compiles(rule: NationalRule) -> bool:
    """Polars (Rust's regex) reads the rule's patterns as Python does; a region whose patterns
    it cannot compile is left to libphonenumber."""
    probe = pl.Series(["0"])
    try:
        for pattern in (rule.prefix, rule.general, rule.idd):
            if pattern is not None:
                probe.str.contains(f"^(?:{pattern})")
    except pl.exceptions.ComputeError:
        return False
    return True


def with_national_e164(phones: pl.DataFrame) -> pl.DataFrame:
    """`phones` (`value`, `region`, `e164`) with `e164` filled where it is null and the value a
    national number read here in the row's region."""
    rules = national_rules()
    todo = phones.filter(
        pl.col("e164").is_null()
        & pl.col("region").is_in(list(rules))
        & pl.col("value").str.contains(NATIONAL_SHAPE)
    ).unique(["value", "region"])
    if todo.is_empty():
        return phones
    candidates = pl.concat(
        _candidates(group.select("value", "region"), rules[region])
        for (region,), group in todo.partition_by("region", as_dict=True).items()
    )
    read = candidates.select(
        "value",
        "region",
        pl.when(is_stored_e164(pl.col("candidate"))).then("candidate").alias("_n"),
    )
    joined = phones.join(read, on=["value", "region"], how="left", maintain_order="left")
    return joined.with_columns(pl.coalesce("e164", "_n").alias("e164")).drop("_n")


def _candidates(phones: pl.DataFrame, rule: NationalRule) -> pl.DataFrame:
    """`phones` with `candidate`: the `+` number libphonenumber would make of each, or null
    where that is not certain. Step by step: each column is computed once."""
    steps = phones.with_columns(pl.col("value").str.replace_all(PUNCTUATION, "").alias("d"))
    steps = _with_national_number(steps, rule)
    digits = pl.col("d")
    excluded = (
        (pl.col("value").str.len_chars() > _MAX_INPUT)
        | (digits.str.len_bytes() < _MIN_DIGITS)
        | digits.str.starts_with(rule.code)
        | digits.str.starts_with("00")  # international in every region (`phone._international`)
    )
    if rule.idd is not None:
        excluded = excluded | digits.str.contains(f"^(?:{rule.idd})")
    candidate = pl.when(~excluded & pl.col("certain")).then(pl.lit("+" + rule.code) + pl.col("nsn"))
    return steps.select("value", "region", candidate.alias("candidate"))


def _with_national_number(steps: pl.DataFrame, rule: NationalRule) -> pl.DataFrame:
    """`nsn`, the national significant number libphonenumber keeps of the digits `d`, and
    `certain`, whether that is sure."""
    if rule.prefix is None:
        return steps.with_columns(pl.col("d").alias("nsn"), pl.lit(True).alias("certain"))
    matched = pl.col("d").str.extract(f"^((?:{rule.prefix}))", 1).fill_null("")
    steps = steps.with_columns(pl.col("d").str.slice(matched.str.len_bytes()).alias("s"))

    def fits(number: str) -> pl.Expr:
        return pl.col(number).str.contains(f"^(?:{rule.general})$")

    stripping = (pl.col("s") != pl.col("d")) & ~(fits("d") & ~fits("s"))
    steps = steps.with_columns(stripping.alias("strips"))
    return steps.select(
        "value",
        "region",
        "d",
        pl.when("strips").then("s").otherwise("d").alias("nsn"),
        (~pl.col("strips") | pl.col("s").str.len_bytes().is_in(sorted(rule.lengths))).alias(
            "certain"
        ),
    )
