"""What one part of a parallel ingest did, kept as a table artifact of its run, where its parent reads it.

The parent (flows/ingest_parallel.py) starts its parts with run_deployment, on whichever worker takes them. A flow
run's return value reaches another process only through result storage that every machine shares, and persisting
the ingest flow's result would persist every one of its tasks' results too (they inherit the setting); one small
artifact a part, through the API every worker already talks to, needs neither. It also shows in the UI, under the
part's run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from uuid import UUID

from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterType,
)
from pydantic import BaseModel, ConfigDict, ValidationError


class PartCounts(BaseModel):
    """The counts of one part, as its run records them."""

    model_config = ConfigDict(extra="forbid")  # tells this artifact from any other one-row table of the run

    files: int
    accepted: int
    rejected: int
    duplicates: int
    held: int = 0
    resumed: int = 0

    @classmethod
    def of(cls, summary: BaseModel) -> PartCounts:
        """The counts of a run's summary (an IngestSummary), leaving out what the parent does not add up."""
        return cls.model_validate(summary.model_dump(include=set(cls.model_fields)))


def record_part(counts: PartCounts, year: int) -> None:
    """Record this run's counts as a table artifact of the run (no key: one per run, never overwritten)."""
    create_table_artifact([counts.model_dump()], description=(
        f"{year}年度并行接收的一部分：文件{counts.files}个，通过{counts.accepted}，未通过{counts.rejected}，"
        f"重复{counts.duplicates}"))


def read_parts(client: SyncPrefectClient, flow_run_ids: Iterable[UUID]) -> dict[UUID, PartCounts]:
    """The counts the runs recorded, by run; a run that recorded none (it failed first) is missing."""
    ids = list(flow_run_ids)
    if not ids:
        return {}
    # the campaign's own tables (progress, units) are keyed; a part's counts are not
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=ids), type=ArtifactFilterType(any_=["table"]),
        key=ArtifactFilterKey(exists_=False)))
    found: dict[UUID, PartCounts] = {}
    for artifact in artifacts:
        if artifact.flow_run_id is None or not isinstance(artifact.data, str):
            continue
        rows = json.loads(artifact.data)
        if isinstance(rows, list) and len(rows) == 1:
            try:
                found[artifact.flow_run_id] = PartCounts.model_validate(rows[0])
            except ValidationError:
                continue
    return found
