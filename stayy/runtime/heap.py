"""Keep the objects a serving process starts with out of the garbage collector's full collections.

A full (generation 2) collection walks every object the collector tracks, and
no thread of the process runs meanwhile. With Django, DRF and the app loaded
that is many thousands of objects, so every request in flight in that worker
waits for the walk. A job that allocates a lot, like a full sync of the
users, brings full collections on every few seconds. The objects loaded at
startup (modules, classes, settings, URL patterns) live as long as the
process, so walking them again is wasted work: :func:`freeze_startup_objects`
moves them to the collector's permanent generation (:func:`gc.freeze`), and
full collections then walk only what was made since (the figures:
bench/README.md, "Decisions").

gunicorn's ``post_worker_init`` hook and ``manage.py runjobs`` call it once
the app is loaded.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger("stayy.runtime")


def freeze_startup_objects() -> int:
    """Collect startup's garbage, then freeze every object tracked now; returns how many are frozen."""
    gc.collect()  # what startup left behind would otherwise be kept for good
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("froze %d startup objects: full garbage collections leave them out", frozen)
    return frozen
