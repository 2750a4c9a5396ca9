"""The `sluice` command line: the runtime edge where arguments, files and terminals live."""

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("sluice")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"
