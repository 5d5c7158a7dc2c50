"""The job registry and ``JOB_OVERRIDES``: every bad override is a ConfigError that names the job."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from config.env import ConfigError
from stayy.scheduling import registry
from stayy.scheduling.triggers import CronSchedule, IntervalSchedule

pytestmark = pytest.mark.usefixtures("restore_registry")

JOB = "tests.overridden_job"


@pytest.fixture
def declared(make_job):
    return make_job(JOB, every=300, timeout=30, misfire_grace=10, sync=False)


def test_the_apps_jobs_are_discovered():
    assert "stayy.purge_job_runs" in registry.job_names()
    spec = registry.get("stayy.purge_job_runs")
    assert spec.schedule == CronSchedule("17 3 * * *")
    assert spec.description.startswith("Delete run history")


def test_declared_values(declared):
    assert declared.schedule == IntervalSchedule(300)
    assert (declared.timeout, declared.misfire_grace, declared.enabled) == (30.0, 10.0, True)


def test_interval_override(declared):
    registry.apply_overrides({JOB: {"interval": 5}})
    assert registry.get(JOB).schedule == IntervalSchedule(5)


def test_cron_and_timezone_override(declared):
    registry.apply_overrides({JOB: {"cron": "30 2 * * 0", "timezone": "Europe/Berlin"}})
    assert registry.get(JOB).schedule == CronSchedule("30 2 * * 0", "Europe/Berlin")


def test_enabled_timeout_and_misfire_grace_overrides(declared):
    registry.apply_overrides({JOB: {"enabled": False, "timeout": 2.5, "misfire_grace": 1}})
    spec = registry.get(JOB)
    assert (spec.enabled, spec.timeout, spec.misfire_grace) == (False, 2.5, 1.0)
    assert spec.schedule == IntervalSchedule(300)


def test_overrides_are_recomputed_from_the_declaration(declared):
    registry.apply_overrides({JOB: {"interval": 5, "enabled": False}})
    registry.apply_overrides({})
    assert registry.get(JOB) == declared


def test_a_bad_override_leaves_the_effective_specs_alone(declared):
    registry.apply_overrides({JOB: {"interval": 5}})
    with pytest.raises(ConfigError):
        registry.apply_overrides({JOB: {"interval": 0}})
    assert registry.get(JOB).schedule == IntervalSchedule(5)


def test_unknown_job():
    with pytest.raises(ConfigError) as info:
        registry.apply_overrides({"nope.job": {"interval": 5}})
    assert info.value.name == "JOB_OVERRIDES"
    assert "'nope.job'" in str(info.value)
    assert "stayy.purge_job_runs" in str(info.value)  # lists the known jobs


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"every": 5}, "every"),
        ({"interval": 0}, "interval"),
        ({"interval": -5}, "interval"),
        ({"interval": "5"}, "interval"),
        ({"interval": True}, "interval"),
        ({"interval": 2.5}, "interval"),
        ({"interval": 5, "cron": "* * * * *"}, "exactly one of"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"misfire_grace": 0}, "misfire_grace"),
        ({"misfire_grace": float("nan")}, "misfire_grace"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"cron": "0 3 * * * *"}, "5 fields"),
        ({"cron": "61 * * * *"}, "61"),
        ({"cron": "* * * * 8"}, "day of week"),
        ({"cron": "* * * * *", "timezone": "Nowhere/Land"}, "Nowhere/Land"),
        ({"timezone": "Europe/Berlin"}, "timezone"),
        ({"interval": 5, "timezone": "Europe/Berlin"}, "timezone"),
        ("every 5 seconds", "JSON object"),
    ],
)
def test_bad_override_is_a_config_error_naming_the_job(declared, override, expected):
    with pytest.raises(ConfigError) as info:
        registry.apply_overrides({JOB: override})
    message = str(info.value)
    assert info.value.name == "JOB_OVERRIDES"
    assert f"'{JOB}'" in message
    assert expected in message


def test_job_names_must_be_dotted_lower_case(make_job):
    with pytest.raises(ValueError, match="must look like"):
        make_job("NoDots", sync=False)


def test_a_job_cannot_be_declared_twice(make_job):
    make_job("tests.twice", sync=False)
    with pytest.raises(ValueError, match="declared twice"):
        registry.job("tests.twice", every=5)(lambda ctx: None)


def test_unknown_job_lookup_lists_the_known_jobs():
    with pytest.raises(registry.UnknownJob) as info:
        registry.get("nope.nope")
    assert "stayy.purge_job_runs" in str(info.value)


# --- properties (Hypothesis) ------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
OVERRIDE_KEYS = st.sampled_from(["interval", "cron", "timezone", "enabled", "timeout", "misfire_grace"])
PLAUSIBLE = st.dictionaries(
    OVERRIDE_KEYS | st.text(max_size=12),
    JSON_VALUES
    | st.integers(-5, 100_000)
    | st.sampled_from(["0 3 * * 0", "*/5 * * * *", "61 * * * *", "Europe/Berlin", "Nowhere/Land"]),
    max_size=4,
)


# The declared job is the same for every example; the registry is restored after each.
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.dictionaries(
        st.sampled_from([JOB, "stayy.purge_job_runs"]) | st.text(max_size=30),
        PLAUSIBLE | JSON_VALUES,
        max_size=3,
    )
)
def test_any_json_overrides_apply_or_fail_with_a_config_error_and_change_nothing(declared, overrides):
    before = {spec.name: spec for spec in registry.all_jobs()}
    try:
        registry.apply_overrides(overrides)
    except ConfigError as exc:
        assert exc.name == "JOB_OVERRIDES"
        assert "\n" not in str(exc)
        assert {spec.name: spec for spec in registry.all_jobs()} == before
        return
    for name, override in overrides.items():
        spec = registry.get(name)
        if override is None:  # null: no override
            assert spec == registry._declared[name]
            continue
        if "enabled" in override:
            assert spec.enabled is override["enabled"]
        if "interval" in override:
            assert spec.schedule == IntervalSchedule(override["interval"])
    registry.apply_overrides({})
