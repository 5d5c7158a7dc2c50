"""A job's schedule in words, from the machine form the catalog stores (``interval:30``, ``cron:…@zone``).

The words are the schedule's own (:meth:`stayy.scheduling.triggers.Schedule.describe`,
the same the catalog and the API show); a key that no longer reads as a
schedule is shown as it is (a crontab line as ``cron '…' zone``).
"""

from __future__ import annotations

from stayy.scheduling.triggers import InvalidSchedule, schedule_from_key


def schedule_in_words(trigger_key: str) -> str:
    """The catalog's trigger key in words; an unreadable key is shown as it is."""
    try:
        return schedule_from_key(trigger_key).describe()
    except InvalidSchedule:
        pass
    kind, _, rest = trigger_key.partition(":")
    if kind == "cron" and rest:
        expression, at, timezone = rest.rpartition("@")
        if not at:
            expression, timezone = rest, ""
        return f"cron '{' '.join(expression.split())}' {timezone or 'UTC'}"
    return trigger_key
