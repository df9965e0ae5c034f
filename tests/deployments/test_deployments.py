"""Smoke test of every deployment: served from deployments/serve.py, and declared for workers in prefect.yaml."""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint

from deployments.serve import SERVE_LIMIT, deployments
from flows.chase_late_units import chase_late_units

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = "Asia/Shanghai"
EXPECTED = {  # flow/deployment -> (cron or None for on demand, required parameters, collision strategy or None
    # for no limit of one run at a time)
    "ingest-open-campaigns/every-5-min": ("*/5 * * * *", [], "CANCEL_NEW"),
    "chase-open-campaigns/daily-0900": ("0 9 * * *", [], "CANCEL_NEW"),
    "draft-open-campaigns/daily-1800": ("0 18 * * *", [], "CANCEL_NEW"),
    "open-collection/on-demand": (None, ["year", "deadline"], "ENQUEUE"),
    "final-report/on-demand": (None, ["year"], "CANCEL_NEW"),
    "unit-reports/on-demand": (None, ["year"], "CANCEL_NEW"),
    "ingest-returns/on-demand": (None, ["year"], None),  # ingest-parallel runs several at once
    "ingest-parallel/on-demand": (None, ["year"], "CANCEL_NEW"),
}


def _served() -> dict[str, RunnerDeployment]:
    return {f"{d.flow_name}/{d.name}": d for d in deployments()}


def _crons(schedules: Sequence[Any] | None) -> list[tuple[str, str | None]]:
    crons = []
    for item in schedules or []:
        schedule = item.schedule if hasattr(item, "schedule") else item["schedule"]
        assert isinstance(schedule, CronSchedule)
        crons.append((schedule.cron, schedule.timezone))
    return crons


def test_served_deployments_names_schedules_timezones_and_limits():
    served = _served()
    assert set(served) == set(EXPECTED)
    for name, (cron, required, strategy) in EXPECTED.items():
        deployment = served[name]
        assert _crons(deployment.schedules) == ([(cron, SHANGHAI)] if cron else []), name
        if strategy is None:
            assert deployment.concurrency_limit is None, name
        else:
            assert deployment.concurrency_limit == 1, name
            assert deployment.concurrency_options is not None
            assert deployment.concurrency_options.collision_strategy.value == strategy, name
        assert deployment.entrypoint and ":" not in deployment.entrypoint  # a module path: served from any folder
        assert deployment.description and deployment.tags == ["nianbao"]
        assert sorted(deployment._parameter_openapi_schema.required or []) == sorted(required), name
    assert SERVE_LIMIT >= 2  # a final report waiting for approval must not block the schedules


def test_on_demand_parameters_are_what_the_run_form_asks_for():
    served = _served()
    opening = served["open-collection/on-demand"]._parameter_openapi_schema.properties
    assert opening["year"]["type"] == "integer" and opening["deadline"]["format"] == "date"
    final = served["final-report/on-demand"]._parameter_openapi_schema.properties
    assert final["approval_days"]["default"] == 14


def test_prefect_yaml_declares_the_same_deployments_for_a_process_work_pool():
    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    model = PrefectYamlModel.model_validate(raw)  # what `prefect deploy` reads
    assert raw["pull"] == [{"prefect.deployments.steps.set_working_directory":
                            {"directory": "{{ $NIANBAO_CODE_DIR }}"}}]
    served = _served()
    declared = {}
    for config in raw["deployments"]:
        flow: Flow[..., Any] = load_flow_from_entrypoint(str(ROOT / config["entrypoint"]))
        declared[f"{flow.name}/{config['name']}"] = config
    assert set(declared) == set(served)
    assert len(model.deployments) == len(served)
    for name, config in declared.items():
        deployment = served[name]
        assert config["work_pool"]["name"] == "nianbao", name
        schedules = [_schedule_config_to_deployment_schedule(s) for s in config["schedules"]]
        assert _crons(schedules) == _crons(deployment.schedules), name
        if deployment.concurrency_options is None:
            assert "concurrency_limit" not in config and deployment.concurrency_limit is None, name
        else:
            assert config["concurrency_limit"] == {"limit": 1, "collision_strategy":
                                                   deployment.concurrency_options.collision_strategy.value}, name
        assert config["description"] == deployment.description and config["tags"] == deployment.tags


def test_the_chase_deployment_runs_the_chase_flow_for_a_year():
    chase = chase_late_units
    assert isinstance(chase, Flow) and chase.name == "chase-late-units"
    parameters = inspect.signature(chase.fn).parameters
    assert "year" in parameters
    assert all(p.default is not inspect.Parameter.empty for name, p in parameters.items() if name != "year")


def test_serve_uses_a_configured_server_and_starts_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.server import prefect_server

    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.county.example:4200/api")
    with prefect_server(tmp_path / "prefect-server", port=1) as url:
        assert url == "http://prefect.county.example:4200/api"
    assert not (tmp_path / "prefect-server").exists()


def test_a_server_that_cannot_take_its_port_fails_at_once_with_its_own_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Something else (not a Prefect API) listens on the port: the error comes when the server exits, not after the
    whole wait, and carries the server's own reason, since the log's folder may be gone by the time anyone looks."""
    from deployments.server import ServerError, prefect_server
    from tests.ports import free_port

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", free_port()))
        squatter.listen()
        started = time.monotonic()
        with pytest.raises(ServerError, match="already in use"), \
                prefect_server(tmp_path / "prefect-server", port=squatter.getsockname()[1], wait_seconds=300):
            pytest.fail("no server can have started on a port in use")
    assert time.monotonic() - started < 120  # the server's exit ended the wait, not the 300 s
