"""Fail when the virtualenv running this script differs from the lock files in any installed version.

`make install` and `make test` run it after installing from requirements/lock.txt (+ requirements/assets.txt):
every locked package must be installed at exactly its locked version, and nothing else may be installed
except distilkit itself and the venv's own installers (pip, setuptools). Usage:

    .venv/bin/python scripts/check_lock.py requirements/lock.txt requirements/assets.txt
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

ALLOWED_EXTRA = {"distilkit", "pip", "setuptools", "wheel"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(paths: list[str | Path]) -> dict[str, str]:
    """name -> version from `name==version` lines; comments, options and indented `# via` lines are skipped."""
    pins: dict[str, str] = {}
    for path in paths:
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-")):
                continue
            match = PIN.match(stripped)
            if not match:
                raise SystemExit(f"{path}:{number}: not an exact pin (name==version): {stripped!r}")
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def differences(locked: dict[str, str], present: dict[str, str]) -> list[str]:
    """One line per package whose installed state is not the locked one."""
    lines = []
    for name, version in sorted(locked.items()):
        if name not in present:
            lines.append(f"missing: {name}=={version}")
        elif present[name] != version:
            lines.append(f"wrong version: {name} {present[name]} installed, {version} locked")
    for name in sorted(set(present) - set(locked) - ALLOWED_EXTRA):
        lines.append(f"not in the lock: {name}=={present[name]}")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    problems = differences(read_lock(argv), installed())
    if problems:
        print(f"{sys.prefix} does not match {' + '.join(argv)}:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        print(
            "Rebuild it from the lock: `rm -rf .venv && make install` (or `make lock` if the lock should change).",
            file=sys.stderr,
        )
        return 1
    print(f"{len(read_lock(argv))} packages installed exactly as locked ({', '.join(argv)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
