"""The one compiled part: `audience_sync.identifiers._digest` (see its source for why).

Optional: without a C compiler or OpenSSL's headers (Debian: libssl-dev) the install goes on
without it and `hash_many` hashes with the polars-hash plugin instead, a little slower.
Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "audience_sync.identifiers._digest",
            sources=["src/audience_sync/identifiers/_digest.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
