"""The environment of a child process of the service."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

#: Variables a child never inherits: pytest's own, and the autoreloader's mark of its child.
NEVER_INHERITED = ("PYTEST_", "RUN_MAIN")


def child_env(
    values: Mapping[str, str | None] | None = None,
    /,
    *,
    drop: Iterable[str] = (),
    base: Mapping[str, str] | None = None,
    **more: str | None,
) -> dict[str, str]:
    """``base`` (default: this process's environment) without the variables whose names start
    with one of ``drop`` (or of :data:`NEVER_INHERITED`), with unbuffered output and ``values``
    and ``more`` on top; a value of ``None`` removes the variable."""
    prefixes = (*NEVER_INHERITED, *drop)
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if not key.startswith(prefixes)}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in {**(values or {}), **more}.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env
