"""Shared pytest configuration: deterministic hypothesis runs."""

from hypothesis import HealthCheck, settings

# Every property test is reproducible: derandomize makes hypothesis derive its
# examples from the test itself instead of a random seed.
settings.register_profile(
    "sfc",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("sfc")
