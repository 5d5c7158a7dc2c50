"""A job's schedule in words, from the machine form the catalog stores (``interval:30``, ``cron:…@zone``).

Intervals and daily crontab lines get short phrases ("every 30 seconds",
"daily at 03:00 Europe/Berlin"); other crontab lines are described by
cron-descriptor (standard crontab: 0 and 7 are Sunday, as in our triggers)
and fall back to the expression itself, as do lines our triggers cannot read.
"""

from __future__ import annotations

from cron_descriptor import ExpressionDescriptor, Options

from stayy.scheduling.triggers import CronSchedule, IntervalSchedule, InvalidSchedule


def _cron_options() -> Options:
    options = Options()
    options.use_24hour_time_format = True
    options.throw_exception_on_parse_error = True
    options.verbose = False
    return options


def cron_in_words(expression: str, timezone: str = "UTC") -> str:
    """``0 3 * * *`` → ``daily at 03:00 UTC``; ``*/15 9-17 * * 1-5`` → ``every 15 minutes, … (UTC)``."""
    fields = expression.split()
    try:
        CronSchedule(expression, timezone)  # what our triggers cannot read, no phrase can describe
    except InvalidSchedule:
        return f"cron '{' '.join(fields)}' {timezone}"
    minute, hour, day, month, weekday = fields
    if minute.isdigit() and hour.isdigit() and (day, month, weekday) == ("*", "*", "*"):
        return f"daily at {int(hour):02d}:{int(minute):02d} {timezone}"
    try:
        words = ExpressionDescriptor(" ".join(fields), _cron_options()).get_description()
    except Exception:  # cron-descriptor raises its own and plain errors alike on what it cannot read
        return f"cron '{' '.join(fields)}' {timezone}"
    return f"{words[:1].lower()}{words[1:]} ({timezone})"


def schedule_in_words(trigger_key: str) -> str:
    """The catalog's trigger key in words; an unreadable key is shown as it is."""
    kind, _, rest = trigger_key.partition(":")
    if kind == "interval" and rest.isdigit():
        try:
            return IntervalSchedule(int(rest)).describe()
        except InvalidSchedule:
            return trigger_key
    if kind == "cron" and rest:
        expression, _, timezone = rest.rpartition("@")
        if not expression:  # no "@zone" part
            return cron_in_words(rest)
        return cron_in_words(expression, timezone or "UTC")
    return trigger_key
