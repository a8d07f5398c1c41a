"""The compiled parts (see each source for why):

- `audience_sync.identifiers._digest`: without a C compiler or OpenSSL's headers (Debian:
  libssl-dev) the install goes on without it and `hash_many` hashes with the polars-hash
  plugin instead, a little slower;
- `audience_sync.sources._columns`: without SQLite's headers (Debian: libsqlite3-dev) members
  are read on SQLite through Python's sqlite3 module instead, several times slower.

Both are optional. Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "audience_sync.identifiers._digest",
            sources=["src/audience_sync/identifiers/_digest.c"],
            depends=["src/audience_sync/_arrow.h"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "audience_sync.sources._columns",
            sources=["src/audience_sync/sources/_columns.c"],
            depends=["src/audience_sync/_arrow.h"],
            libraries=["sqlite3"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
