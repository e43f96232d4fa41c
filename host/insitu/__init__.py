"""insitu: host library and emulator for mechanical networks whose nodes learn in place.

``insitu.__version__`` is the installed distribution's version; the firmware carries the same
number (``insitu_node.VERSION``), and every run records the firmware it ran on (its version
and the sha256 of its source, ``insitu.deploy.flash.firmware_sha256``).

For a lab notebook (docs/tutorial.ipynb): ``insitu.Session`` opens a rig (emulated boards or
serial ports) and trains any method; ``insitu.open_run`` reads a recorded run back as pandas
DataFrames (``insitu.notebook``). Both are imported on first use: ``import insitu`` stays
cheap for the command line.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("insitu")
except PackageNotFoundError:  # imported from a checkout that was never installed
    from insitu_node import VERSION

    __version__ = VERSION

__all__ = ["Run", "Session", "__version__", "open_run"]

_NOTEBOOK = ("Run", "Session", "open_run")


def __getattr__(name: str) -> object:
    if name in _NOTEBOOK:
        from insitu import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'insitu' has no attribute {name!r}")
