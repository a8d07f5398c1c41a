"""National numbers read column-wise (`identifiers.national`) give exactly libphonenumber's
answer, in every region the reading covers, or leave the number to it."""

from __future__ import annotations

import random

import phonenumbers
import polars as pl
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from audience_sync.identifiers import parse_phone_e164
from audience_sync.identifiers.national import national_rules, with_national_e164

PUNCTUATION = " ().-"


def examples(region: str) -> list[str]:
    """The region's example numbers of every type: national significant numbers."""
    found = set()
    for kind in vars(PhoneNumberType).values():
        if not isinstance(kind, int):
            continue
        number = phonenumbers.example_number_for_type(region, kind)
        if number is not None:
            found.add(phonenumbers.national_significant_number(number))
    return sorted(found)


def variants(region: str, rng: random.Random) -> list[str]:
    """Numbers as people write them, and near-misses: national format, with and without the
    trunk prefix, digits changed, one digit more or fewer, punctuation anywhere, random
    digits, and the country code or an international prefix written first."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = metadata.national_prefix or ""
    made = []
    for nsn in examples(region):
        number = phonenumbers.parse(nsn, region)
        made.append(phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL))
        for _ in range(12):
            digits = list(trunk * rng.randint(0, 2) + nsn)
            for _ in range(rng.randint(0, 3)):
                digits[rng.randrange(len(digits))] = rng.choice("0123456789")
            change = rng.choice((-2, -1, 0, 0, 0, 1))
            if change < 0:
                digits = digits[:change]
            elif change:
                digits.append(rng.choice("0123456789"))
            made.append(punctuate("".join(digits), rng))
        made.append(punctuate(metadata.country_code.__str__() + nsn, rng))
    made.extend(punctuate(random_digits(rng), rng) for _ in range(40))
    made.extend(("0", "00", "(1)", "1-2", "12", "", " ", "0" * 8, "1" * 12, "011 44 20 7946 0958"))
    return made


def random_digits(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 18)))


def punctuate(digits: str, rng: random.Random) -> str:
    out = []
    for digit in digits:
        if rng.random() < 0.2:
            out.append(rng.choice(PUNCTUATION))
        out.append(digit)
    return "".join(out)


def read(values: list[str], region: str) -> list[str | None]:
    frame = pl.DataFrame(
        {"value": values, "region": [region] * len(values), "e164": [None] * len(values)},
        schema={"value": pl.String, "region": pl.String, "e164": pl.String},
    )
    return with_national_e164(frame)["e164"].to_list()


@pytest.mark.parametrize("region", sorted(national_rules()))
def test_every_answer_is_libphonenumbers(region: str) -> None:
    rng = random.Random(f"national-{region}")
    values = variants(region, rng)
    answers = read(values, region)
    wrong = [
        (value, fast, parse_phone_e164(value, region))
        for value, fast in zip(values, answers, strict=True)
        if fast is not None and fast != parse_phone_e164(value, region)
    ]
    assert wrong == []


def test_most_numbers_written_nationally_are_read_without_libphonenumber() -> None:
    """The reading covers the regions most files come from, in their usual formats."""
    numbers = {
        "US": ["(415) 555-0123", "415.555.0123", "415-555-0123"],
        "GB": ["020 7946 0958", "07700 900123", "(020) 7946 0958"],
        "DE": ["030 1737459", "0151 10405310"],
        "FR": ["01 23 45 67 89", "06 12 34 56 78"],
        "ES": ["91 060 49 69", "612 34 56 78"],
        "IT": ["06 1234 5678", "312 345 6789"],
        "NL": ["020 123 4567"],
    }
    for region, values in numbers.items():
        answers = read(values, region)
        assert answers == [parse_phone_e164(v, region) for v in values], region
        assert None not in answers, region


def test_numbers_that_need_libphonenumber_are_left_to_it() -> None:
    assert read(["1 415 555 0123", "011 44 20 7946 0958", "+1 415 555 0123"], "US") == [None] * 3
    assert read(["0800 CALL NOW", "020 7946 0958 ext. 12"], "GB") == [None] * 2
    assert {"AR", "BR"}.isdisjoint(national_rules())  # their prefixes rewrite the number
