"""`python -m analysis <sweep_dir>... --out <dir>`: tables, figures and report.md from job folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.report import DIAGNOSTICS, NoRunsError, Options, analyse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    p.add_argument("sweeps", nargs="*", help="sweep or job folders, searched recursively for .hydra/config.yaml")
    p.add_argument("--out", required=True, type=Path, help="output folder (tables/, figures/, report.md)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="also read the online runs of this W&B project")
    p.add_argument("--wandb-log", metavar="[ENTITY/]PROJECT",
                   help="also log the tables and figures as one W&B run (job type analysis; offline unless "
                        "WANDB_MODE=online)")
    p.add_argument("--keep-harvest-failures", action="store_true",
                   help="keep Harvest seeds in which some agent failed to learn to collect apples (default: "
                        "excluded, as in the paper §10.5.3; they are listed in the report either way)")
    p.add_argument("--apples-threshold", type=float, default=d.apples_threshold,
                   help="final apples per episode at or below which a Harvest agent counts as failed (%(default)s)")
    p.add_argument("--return-threshold", type=float, default=d.return_threshold,
                   help="for runs without apples_agent_<i> columns: final return at or below which a Harvest agent "
                        "counts as failed (%(default)s)")
    p.add_argument("--include-partial", action="store_true",
                   help="also use unfinished runs, at the steps they reached (default: left out and listed)")
    p.add_argument("--include-retrained", action="store_true",
                   help="also use runs that a rerun continued with other training values (allow_config_change=true; "
                        "default: left out and listed, since their config shows only the last values)")
    p.add_argument("--until", type=float, metavar="ENV_STEPS",
                   help="cut every run at this many env steps, e.g. to read runs to 2e7 at 1e7 beside runs to 1e7 "
                        "(default: each run to its end; the report names the runs cut)")
    p.add_argument("--final-points", type=int, default=d.final_points,
                   help="final value = mean of this many last logged points of a run (%(default)s; the paper's "
                        "'last 50 agent steps')")
    p.add_argument("--window-points", type=int, default=d.window_points,
                   help="trailing window of the learning-curve CIs, in logged points (%(default)s; the paper's "
                        "'sliding window of 200 agent steps')")
    p.add_argument("--confidence", type=float, default=d.confidence, help="CI level of figures (%(default)s)")
    p.add_argument("--table-confidence", type=float, default=d.table_confidence,
                   help="CI level of tables and bootstrap intervals (%(default)s)")
    p.add_argument("--alpha", type=float, default=d.alpha, help="significance level of Table 4 tests (%(default)s)")
    p.add_argument("--top-k", type=int, default=d.top_k, help="settings pooled in Figs 15 and 17 (%(default)s)")
    p.add_argument("--bootstrap-reps", type=int, default=d.bootstrap_reps, help="bootstrap replicates (%(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="bootstrap seed (%(default)s)")
    p.add_argument("--diagnostic", action="append", default=[], metavar="COLUMN=LABEL",
                   help="also draw metrics column COLUMN for the best setting of every model as "
                        "figures/diag_COLUMN.png, y-axis LABEL (repeatable; e.g. a registered metric)")
    args = p.parse_args(argv)
    if not args.sweeps and not args.wandb:
        p.error("give at least one sweep folder or --wandb")
    for spec in args.diagnostic:
        if not spec.partition("=")[0] or not spec.partition("=")[2]:
            p.error(f"--diagnostic {spec!r}: expected COLUMN=LABEL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = Options(final_points=args.final_points, window_points=args.window_points, confidence=args.confidence,
                   table_confidence=args.table_confidence, alpha=args.alpha, top_k=args.top_k,
                   exclude_harvest_failures=not args.keep_harvest_failures, apples_threshold=args.apples_threshold,
                   return_threshold=args.return_threshold, include_partial=args.include_partial,
                   include_retrained=args.include_retrained, until=args.until,
                   bootstrap_reps=args.bootstrap_reps, seed=args.seed,
                   diagnostics={**DIAGNOSTICS, **dict(s.split("=", 1) for s in args.diagnostic)})
    try:
        report = analyse(args.sweeps, args.out, opts, args.wandb)
    except NoRunsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {report}")
    if args.wandb_log:
        from analysis.to_wandb import publish

        print(publish(args.out, args.wandb_log))
    return 0


def cli() -> None:
    """The ``si-analysis`` command (pyproject.toml): ``python -m analysis`` with the process's arguments."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
