"""insitu: host library and emulator for mechanical networks whose nodes learn in place.

``insitu.__version__`` is the installed distribution's version; the firmware carries the same
number (``insitu_node.VERSION``), and every run records the boards' firmware it ran on.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("insitu")
except PackageNotFoundError:  # imported from a checkout that was never installed
    from insitu_node import VERSION

    __version__ = VERSION

__all__ = ["__version__"]
