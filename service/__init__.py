"""tunegate: the HTTP service and the domain code shared with the workers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tunegate")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
