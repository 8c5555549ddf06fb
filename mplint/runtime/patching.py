"""Replace an attribute for the length of a run and put the original back, also on error."""

from __future__ import annotations

import contextlib
from typing import Any

_ABSENT = object()


def patch(stack: contextlib.ExitStack, owner: Any, name: str, value: Any) -> Any:
    """Set `owner.name = value` until `stack` closes; return what `owner.name` resolved to before."""
    previous = getattr(owner, name)
    own = vars(owner).get(name, _ABSENT) if hasattr(owner, "__dict__") else previous
    setattr(owner, name, value)
    if own is _ABSENT:  # inherited: remove it again rather than copy it onto `owner`
        stack.callback(delattr, owner, name)
    else:
        stack.callback(setattr, owner, name, own)
    return previous
