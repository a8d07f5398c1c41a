"""Meta names hash as Meta's own SDK (`facebook-business`) hashes them, on ASCII input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.identifiers import hash_identifier, hash_many

CustomAudience = pytest.importorskip(
    "facebook_business.adobjects.customaudience", reason="facebook-business is a dev dependency"
).CustomAudience

SDK_KEYS = {"first_name": "FN", "last_name": "LN", "city": "CT"}


def sdk_hash(value: str, field: str) -> str:
    """What the SDK's `add_users` sends for one value of one multi-key field."""
    params = CustomAudience.format_params([SDK_KEYS[field]], [[value]], is_raw=True)
    [[digest]] = params["payload"]["data"]
    return str(digest)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "name", ["Mary Ann", "Mary-Ann", "mary ann", " MARY-ANN. ", "O'Brien", "Mary Ann 2nd"]
)
def test_a_meta_name_hashes_as_the_sdk_hashes_it(name: str) -> None:
    for field in ("first_name", "last_name"):
        assert hash_identifier(name, field, "meta") == sdk_hash(name, field)
        assert hash_many([name], field, "meta") == [sdk_hash(name, field)]


def test_mary_ann_with_a_space_or_a_hyphen_is_one_name_at_meta() -> None:
    assert hash_identifier("Mary Ann", "first_name", "meta") == sha("maryann")
    assert hash_identifier("Mary-Ann", "first_name", "meta") == sha("maryann")


def test_letters_of_other_scripts_stay_as_utf8_where_the_sdk_drops_them() -> None:
    assert hash_identifier("José", "first_name", "meta") == sha("josé")
    assert hash_identifier("Jean Élie", "first_name", "meta") == sha("jeanélie")
    assert hash_identifier("김 민준", "last_name", "meta") == sha("김민준")
    assert sdk_hash("José", "first_name") == sha("jos")  # the SDK's ASCII-only filter


ascii_names = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=20)


@given(ascii_names)
def test_every_ascii_name_hashes_as_the_sdk_hashes_it_where_any_letter_is_left(
    name: str,
) -> None:
    if not any(ch.isalpha() for ch in name):
        # The SDK hashes an empty string; we send nothing for a name with no letters.
        assert hash_identifier(name, "first_name", "meta") is None
        return
    for field in ("first_name", "last_name", "city"):
        assert hash_identifier(name, field, "meta") == sdk_hash(name, field)
