"""Named points of the ingest between two durable effects, where a crash leaves a state of its own.

The ingest is built so that a run killed at any moment (SIGKILL, a power cut) and run again has the effect of one
uninterrupted run: every file archived, stored once, answered once, moved to processed/. Each point below is a
place where that argument has to hold; reached() does nothing unless a hook is installed, and the crash tests
(tests/crash/) install one that kills the process at a chosen point.

  claim.adopted     a dead run's claim folder taken over (its holder file renamed to this run's)
  claim.moved       one waiting file renamed into this run's claim folder
  archive.written   one file's bytes archived, before anything reads them
  store.committed   one batch of returns stored (submissions, figures, verdicts, events, assignments)
  mail.claimed      the answer mails of a batch claimed on the ledger (pending)
  answer.written    one .txt answer written
  mail.written      one answer mail written as .eml
  mail.recorded     the outcomes of a batch's answer mails recorded on the ledger
  file.moved        one file moved out of its claim folder to processed/ (its last step)
  ingest.done       every batch done, the claim not yet released
"""

from __future__ import annotations

from collections.abc import Callable

POINTS = ("claim.adopted", "claim.moved", "archive.written", "store.committed", "mail.claimed", "answer.written",
          "mail.written", "mail.recorded", "file.moved", "ingest.done")

_hook: Callable[[str], None] | None = None


def install(hook: Callable[[str], None] | None) -> None:
    """Call hook(point) at every point reached from now on in this process (None: stop)."""
    global _hook
    _hook = hook


def reached(point: str) -> None:
    """Mark that the ingest has just passed this point."""
    if _hook is not None:
        _hook(point)
