"""Hypothesis profiles of the property tests: a fast default for the suite, a thorough one for longer runs.

    NIANBAO_HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/property

`fast` (the default) keeps the package well inside the suite's CI budget; `thorough` runs fifty times the examples.
Under CI (the CI variable set, as .ci/run does) `fast` is derandomized, so a red CI run can be repeated.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]  # a unit is ~170 draws: large, by design

settings.register_profile(
    "fast", max_examples=40, deadline=None, suppress_health_check=_SLOW_DATA,
    derandomize=bool(os.environ.get("CI")), print_blob=True)
settings.register_profile(
    "thorough", max_examples=2_000, deadline=None, suppress_health_check=_SLOW_DATA, )
settings.load_profile(os.environ.get("NIANBAO_HYPOTHESIS_PROFILE", "fast"))
