"""mammocad — open-source mammography computer-aided detection."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mammocad")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
