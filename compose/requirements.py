"""Print the requirements of pyproject.toml for the given extras, one per line.

Used by compose/Dockerfile to install dependencies in a layer of their own, before the sources
are copied: `python3 requirements.py [--extras-only] pyproject.toml cpu,train`.
"""

import sys
import tomllib


def requirements(pyproject: dict, extras: list[str], extras_only: bool) -> list[str]:
    project = pyproject["project"]
    unknown = sorted(set(extras) - set(project.get("optional-dependencies", {})))
    if unknown:
        raise SystemExit(f"unknown extras: {', '.join(unknown)}")
    reqs = [] if extras_only else list(project["dependencies"])
    return reqs + [r for e in extras for r in project["optional-dependencies"][e]]


def main(argv: list[str]) -> None:
    extras_only = "--extras-only" in argv
    path, extras = [a for a in argv if a != "--extras-only"]
    with open(path, "rb") as handle:
        pyproject = tomllib.load(handle)
    names = [e for e in extras.split(",") if e]
    print("\n".join(requirements(pyproject, names, extras_only)))


if __name__ == "__main__":
    main(sys.argv[1:])
