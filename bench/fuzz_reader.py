"""Fuzz the examination of returned files (tasks/ingest.py examine, tasks/workbook_read.py read_workbook) with
damaged versions of a real issued and filled workbook (bench/fuzz_inputs.py), against the promises of
bench/fuzz_oracle.py: no exception, no hang, never silent, nothing wrongly accepted, both reader paths agreeing.

    python -m bench.fuzz_reader --seconds 300                  (what `make fuzz` runs; FUZZ_SECONDS sets it)
    python -m bench.fuzz_reader --count 2000 --engine random   (a fixed, seeded slice: the same inputs every time)

Engines: `atheris` (coverage-guided libFuzzer over the project's Python code, with the structured mutations as its
custom mutator; used by default when the package imports) and `random` (seeded, stateless: input i of seed s is
always the same bytes). Either runs in a child process under a watchdog: an input that takes longer than
--hang-seconds, or that kills the process (a native abort, an allocation the memory cap refuses), is recorded and
the run goes on from the next input. Every finding's input is written to --out (bench/out/fuzz-crashes/, ignored
by git) with a text file saying what broke; the summary (inputs run, findings by kind) is printed and written to
--out/summary.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.fuzz_oracle import Verdict

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "fuzz-crashes"
MEMORY_LIMIT = 4 * 1024**3  # address space of the fuzzed process: a runaway allocation fails instead of swapping
KEEP_PER_SIGNATURE = 3  # inputs kept for each distinct finding


@dataclass
class Summary:
    engine: str
    inputs: int = 0
    seconds: float = 0.0
    accepted: int = 0
    fast_path: int = 0
    restarts: int = 0
    findings: Counter[str] = field(default_factory=Counter)  # "kind: signature" -> times seen
    codes: Counter[str] = field(default_factory=Counter)  # issue codes the inputs got

    def add(self, other: dict[str, Any]) -> None:
        for name in ("inputs", "accepted", "fast_path"):
            setattr(self, name, getattr(self, name) + other.get(name, 0))
        self.findings.update(other.get("findings", {}))
        self.codes.update(other.get("codes", {}))


class Keeper:
    """Writes a finding's input and its story to the output folder, a few per distinct signature."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.kept: Counter[str] = Counter()

    def keep(self, kind: str, signature: str, detail: str, data: bytes, recipe: str) -> None:
        key = f"{kind}: {signature}"
        self.kept[key] += 1
        if self.kept[key] > KEEP_PER_SIGNATURE:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        stem = f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}"
        (self.out / f"{stem}.xlsx").write_bytes(data)
        (self.out / f"{stem}.txt").write_text(f"{key}\n{recipe}\n\n{detail}\n", encoding="utf-8")


def _limit_memory() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))


def _context(folder: Path) -> tuple[Any, Any]:
    """The seeds and the oracle, made the same way in every process."""
    from bench.fuzz_inputs import build_seeds
    from bench.fuzz_oracle import Oracle
    from schemas.form_spec import get_form

    form = get_form()
    seeds = build_seeds(form, folder)
    return seeds, Oracle(form, seeds.figures)


# -- the random engine ---------------------------------------------------------------------------------------------

def _random_worker(run_seed: int, start: int, stop: int | None, deadline: float, slow: float, out: str,
                   current: Any, started: Any, results: Any) -> None:
    """Judge inputs start, start+1, ... until stop or the deadline; report each finding and the counts."""
    _limit_memory()
    from bench.fuzz_inputs import make_input

    with tempfile.TemporaryDirectory(prefix="nianbao-fuzz-") as folder:
        seeds, oracle = _context(Path(folder))
        oracle = type(oracle)(oracle.form, oracle.figures, slow)
        keeper = Keeper(Path(out))
        counts: dict[str, Any] = {"inputs": 0, "accepted": 0, "fast_path": 0, "findings": Counter(), "codes": Counter()}
        index = start
        while (stop is None or index < stop) and time.time() < deadline:
            current.value, started.value = index, time.time()  # before the input is made: it may be what fails
            item = make_input(seeds, run_seed, index)
            verdict = oracle.judge(item.data)
            started.value = 0.0
            _tally(counts, keeper, verdict, item.data,
                   f"seed {run_seed}, input {index}: {item.seed} + {' + '.join(item.mutations)}")
            if counts["inputs"] % 25 == 0:
                results.put(_flush(counts))
            index += 1
        results.put(_flush(counts))


def _tally(counts: dict[str, Any], keeper: Keeper, verdict: Verdict, data: bytes, recipe: str) -> None:
    """One judged input counted; each of its findings counted and its input kept."""
    counts["inputs"] += 1
    counts["accepted"] += verdict.accepted
    counts["fast_path"] += verdict.fast_path
    counts["codes"].update(set(verdict.codes))
    for finding in verdict.findings:
        counts["findings"][f"{finding.kind}: {finding.signature}"] += 1
        keeper.keep(finding.kind, finding.signature, finding.detail, data, recipe)


def _flush(counts: dict[str, Any]) -> dict[str, Any]:
    """The counts since the last report (the worker may die later: what it did so far is kept)."""
    sent = {k: (dict(v) if isinstance(v, Counter) else v) for k, v in counts.items()}
    for key, value in counts.items():
        counts[key] = Counter() if isinstance(value, Counter) else 0
    return sent


def run_random(*, seconds: float | None, count: int | None, run_seed: int, out: Path, slow: float,
               hang: float) -> Summary:
    """Supervise the random engine: restart it past an input that hangs or kills it, recording that input."""
    summary = Summary("random")
    began = time.time()
    deadline = began + seconds if seconds is not None else float("inf")
    stop = count
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no state of the caller (pytest, threads)
    results = spawn.Queue()
    current, started = spawn.Value("q", 0), spawn.Value("d", 0.0)
    start = 0
    keeper = Keeper(out)
    while start < (stop if stop is not None else sys.maxsize) and time.time() < deadline:
        worker = spawn.Process(target=_random_worker, args=(run_seed, start, stop, deadline, slow, str(out), current,
                                                            started, results), daemon=True)
        worker.start()
        verdict = _watch(worker, started, hang, results, summary)
        if verdict is None:
            break  # the worker finished its inputs
        index = current.value
        _record_lost_input(keeper, summary, verdict, run_seed, index)
        summary.restarts += 1
        start = index + 1
    summary.seconds = time.time() - began
    return summary


def _watch(worker: Any, started: Any, hang: float, results: Any, summary: Summary) -> str | None:
    """Wait for the worker; None when it finished, else why it was lost (a hang it was killed for, or a death)."""
    while True:
        worker.join(0.2)
        _drain(results, summary)
        if not worker.is_alive():
            _drain(results, summary)
            return None if worker.exitcode == 0 else f"died (exit code {worker.exitcode})"
        began = started.value
        if began and time.time() - began > hang:
            worker.kill()
            worker.join()
            _drain(results, summary)
            return f"hang (over {hang:.0f} s)"


def _drain(results: Any, summary: Summary) -> None:
    while True:
        try:
            summary.add(results.get_nowait())
        except Exception:  # noqa: BLE001  queue.Empty, or a half-written message of a killed worker
            return


def _record_lost_input(keeper: Keeper, summary: Summary, why: str, run_seed: int, index: int) -> None:
    """The input a worker was lost on, made again from its seed and index (inputs are stateless) and kept."""
    from bench.fuzz_inputs import make_input

    kind = "hang" if why.startswith("hang") else "died"
    with tempfile.TemporaryDirectory(prefix="nianbao-fuzz-") as folder:
        seeds, _ = _context(Path(folder))
        item = make_input(seeds, run_seed, index)
    summary.inputs += 1
    summary.findings[f"{kind}: {why}"] += 1
    keeper.keep(kind, why, f"the examining process was lost on this input: {why}", item.data,
                f"seed {run_seed}, input {index}: {item.seed} + {' + '.join(item.mutations)}")


# -- the atheris engine --------------------------------------------------------------------------------------------

def run_atheris(*, seconds: float, out: Path, slow: float, hang: float) -> Summary:
    """Supervise libFuzzer runs (each a child process) until the time is spent, each resuming the corpus."""
    summary = Summary("atheris")
    out.mkdir(parents=True, exist_ok=True)
    corpus = out.parent / "fuzz-corpus"
    began = time.time()
    while (left := began + seconds - time.time()) > 5:
        command = [sys.executable, "-m", "bench.fuzz_reader", "--atheris-worker", "--seconds", str(int(left)),
                   "--out", str(out), "--slow", str(slow), "--hang", str(hang), "--corpus", str(corpus)]
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        stats = out / "atheris-stats.json"
        if stats.exists():
            summary.add(json.loads(stats.read_text(encoding="utf-8")))
            stats.unlink()
        if finished.returncode != 0:  # libFuzzer stopped on a timeout, an out-of-memory or a native crash
            summary.restarts += 1
            tail = finished.stderr.strip().splitlines()[-12:]
            why = next((line for line in tail if "ERROR: libFuzzer" in line or "failed" in line), "exit "
                       f"{finished.returncode}")
            summary.findings[f"libfuzzer: {why.strip()[:120]}"] += 1
            (out / f"libfuzzer-{int(time.time())}.log").write_text("\n".join(tail), encoding="utf-8")
    summary.seconds = time.time() - began
    return summary


def _atheris_worker(seconds: int, out: Path, slow: float, hang: float, corpus: Path) -> None:
    import random

    import atheris

    with atheris.instrument_imports(include=["tasks", "schemas"]):  # coverage of the reader and the checker
        from bench.fuzz_inputs import WEIGHTS, mutated

        folder = tempfile.mkdtemp(prefix="nianbao-fuzz-")
        seeds, oracle = _context(Path(folder))
    oracle = type(oracle)(oracle.form, oracle.figures, slow)
    corpus.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.returns.items():
        (corpus / f"seed-{name}.xlsx").write_bytes(data)
    keeper = Keeper(out)
    counts: dict[str, Any] = {"inputs": 0, "accepted": 0, "fast_path": 0, "findings": Counter(), "codes": Counter()}
    others = tuple(seeds.returns.values())
    stats = out / "atheris-stats.json"
    last_write = time.time()

    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.15:
            return bytes(atheris.Mutate(data, max_size))  # libFuzzer's own byte-level mutations
        name = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        return mutated(name, rng, data, others)[:max_size]

    def one_input(data: bytes) -> None:
        nonlocal last_write
        verdict = oracle.judge(data)
        _tally(counts, keeper, verdict, data, "atheris input")
        if time.time() - last_write > 2:  # the process may be stopped at any moment by libFuzzer: counts kept
            stats.write_text(json.dumps({k: (dict(v) if isinstance(v, Counter) else v) for k, v in counts.items()}),
                             encoding="utf-8")
            last_write = time.time()

    _limit_memory()
    argv = [sys.argv[0], f"-max_total_time={seconds}", f"-timeout={int(hang)}", "-rss_limit_mb=4096",
            "-max_len=6000000", f"-artifact_prefix={out}/", "-print_final_stats=1", str(corpus)]
    atheris.Setup(argv, one_input, custom_mutator=mutate)
    atheris.Fuzz()


# -- entry point ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=None, help="run this long (default: 300 unless --count)")
    parser.add_argument("--count", type=int, default=None, help="random engine: run exactly this many inputs")
    parser.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto")
    parser.add_argument("--seed", type=int, default=0, help="random engine: the run's seed")
    parser.add_argument("--out", type=Path, default=OUT, help="where inputs that broke a promise are written")
    parser.add_argument("--slow", type=float, default=10.0, help="seconds an input may take before it is 'slow'")
    parser.add_argument("--hang", type=float, default=60.0, help="seconds after which an input is a hang")
    parser.add_argument("--atheris-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, default=OUT.parent / "fuzz-corpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.atheris_worker:
        _atheris_worker(int(args.seconds), args.out, args.slow, args.hang, args.corpus)
        return 0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _atheris_runs() and args.count is None else "random"
    seconds = args.seconds if args.seconds is not None or args.count is not None else 300.0
    if engine == "atheris":
        summary = run_atheris(seconds=seconds or 300.0, out=args.out, slow=args.slow, hang=args.hang)
    else:
        summary = run_random(seconds=seconds, count=args.count, run_seed=args.seed, out=args.out, slow=args.slow,
                             hang=args.hang)
    _report(summary, args.out)
    return 1 if broken_promises(summary) else 0


def broken_promises(summary: Summary) -> dict[str, int]:
    """The findings that break a promise: all but the readers' known leniency (fuzz_oracle.LENIENCY)."""
    from bench.fuzz_oracle import LENIENCY

    return {key: times for key, times in summary.findings.items() if key.split(":")[0] not in LENIENCY}


def _atheris_runs() -> bool:
    """Whether atheris imports, tried in a child: a libFuzzer built against another runtime may abort on import."""
    tried = subprocess.run([sys.executable, "-c", "import atheris"], capture_output=True, check=False)
    return tried.returncode == 0


def _report(summary: Summary, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plain = {**vars(summary), "findings": dict(summary.findings), "codes": dict(summary.codes)}  # not asdict:
    (out / "summary.json").write_text(json.dumps(plain, ensure_ascii=False, indent=2), encoding="utf-8")  # Counters
    rate = summary.inputs / summary.seconds if summary.seconds else 0.0
    print(f"{summary.engine}: {summary.inputs} inputs in {summary.seconds:.0f} s ({rate:.0f}/s), "
          f"{summary.accepted} accepted, {summary.fast_path} read by the fast path, {summary.restarts} restarts")
    broken = broken_promises(summary)
    for finding, times in summary.findings.most_common():
        print(f"  {'BROKEN PROMISE' if finding in broken else 'leniency'} x{times}: {finding}")
    if not broken:
        print("  no broken promise")
    print(f"issue codes: {dict(summary.codes.most_common())}")
    print(f"inputs that broke a promise: {out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
