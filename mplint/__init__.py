"""mplint: find mixed-precision training bugs in PyTorch code, statically and at run time."""

__version__ = "0.1.0"
