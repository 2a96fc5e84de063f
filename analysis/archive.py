"""`python -m analysis.archive <sweep_or_job>... --to <dir>`: slim, gzipped copies of job folders.

Keeps what `python -m analysis` reads (`job_config.yaml`, `config_changes.jsonl`, `.hydra/config.yaml`, `.hydra/overrides.yaml`,
`summary.json`, `metrics.csv`, the evaluators' `eval/*.csv` and `eval/*.json`) and drops checkpoints, logs and W&B files, so that
finished runs can be committed (`archive/` in this repository) and analysed together with runs
made later or on other machines. CSV files are gzipped (`metrics.csv.gz`, `eval/*.csv.gz`; the
analysis reads both forms) with a zero timestamp, so archiving the same run twice gives the same
bytes. A job keeps its path relative to the folder above the given one:
`multirun/box/0_job` given as `multirun/box` lands in `<dir>/box/0_job`. Jobs whose
`summary.json` does not say `complete` (still running, killed, failed) are skipped with a line
saying so, unless `--include-partial`: an archive is what regenerates quoted numbers, so a copy
of a run taken half-way must not pass for the finished run.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

from analysis.runs import job_dirs, read_summary

KEPT = ("job_config.yaml", "config_changes.jsonl", ".hydra/config.yaml", ".hydra/overrides.yaml", "summary.json")


def _gzip(src: Path, dst: Path) -> None:
    with src.open("rb") as f_in, dst.open("wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f_out:
            shutil.copyfileobj(f_in, f_out)


def archive_job(job: Path, dest: Path) -> list[Path]:
    """Copy the analysed files of `job` into `dest`; return the files written.

    The copy is staged in the hidden `.<name>.partial` beside `dest` and renamed into place, so
    an interrupted archive never leaves a half-copied job folder for analysis to read or for a
    commit to pick up: `dest` is the previous archive of the job, or absent (a kill between
    moving the previous one aside and the rename); archiving again completes it."""
    stage, old = dest.with_name(f".{dest.name}.partial"), dest.with_name(f".{dest.name}.old")
    for leftover in (stage, old):
        shutil.rmtree(leftover, ignore_errors=True)
    copies = [(job / rel, Path(rel), shutil.copyfile) for rel in KEPT]
    copies += [(src, src.relative_to(job), shutil.copyfile) for src in sorted((job / "eval").glob("*.json"))]
    for src in [job / "metrics.csv", *sorted((job / "eval").glob("*.csv"))]:
        copies.append((src, src.relative_to(job).with_name(src.name + ".gz"), _gzip))
    written = []
    for src, rel, copy in copies:
        if src.exists():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            copy(src, stage / rel)
            written.append(dest / rel)
    stage.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.rename(old)
    stage.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return written


def job_status(job: Path) -> str:
    """The `status` that `job`'s summary.json declares ("complete", "running", "failed", …;
    "no summary" when it has none or it is unreadable)."""
    summary, problem = read_summary(job)
    return "no summary" if problem else str(summary.get("status", "no status"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.archive", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path, help="sweep or job folders")
    p.add_argument("--to", required=True, type=Path, help="archive folder")
    p.add_argument("--include-partial", action="store_true",
                   help="also archive jobs that are not complete (default: skipped and listed)")
    args = p.parse_args(argv)
    count = 0
    for root in (src.resolve() for src in args.sources):
        jobs = job_dirs(root)
        if not jobs:
            print(f"error: no job folder (.hydra/config.yaml) under {root}", file=sys.stderr)
            return 2
        for job in jobs:
            status = job_status(job)
            if status != "complete" and not args.include_partial:
                print(f"skipped {job}: status {status} (not finished; --include-partial archives it)")
                continue
            dest = args.to / job.relative_to(root.parent)
            files = archive_job(job, dest)
            count += 1
            print(f"{job} -> {dest} ({len(files)} files)")
    print(f"archived {count} job folder(s) into {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
