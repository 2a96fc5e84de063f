"""``python -m si.bench <command> [options]``: the benchmarks, each a table of env-steps/s.

``--help`` lists the commands with their options; ``python -m si.bench <command> --help``
describes one command.
"""

import importlib
import sys
import textwrap

#: Each command (a module of si.bench with ``parser()`` and ``main(argv)``) and what it measures.
BENCHES = {
    "env": "env-steps/s of the batched envs (random actions) per game, device and batch size",
    "train": "env-steps/s of full training iterations per reward variant, the time vs A3C and the "
             "influence overhead",
    "a3c": "env-steps/s of optim=a3c with 1, 2, … workers and the scaling efficiency",
}
USAGE = f"usage: python -m si.bench {{{','.join(BENCHES)}}} [options]"


def help_text() -> str:
    """The usage line, then each command: what it measures, its usage and its options."""
    parts = [USAGE, "", "Benchmarks; each prints a table of env-steps/s (docs/results.md has measured numbers).",
             "", "commands:"]
    for name, summary in BENCHES.items():
        p = importlib.import_module(f"si.bench.{name}").parser()
        p.description = summary
        parts += [f"  {name}", textwrap.indent(p.format_help().rstrip(), "    "), ""]
    parts.append("python -m si.bench <command> --help describes one command.")
    return "\n".join(parts)


def main(argv: list[str]) -> None:
    if argv[:1] in (["-h"], ["--help"]):
        print(help_text())
        return
    if not argv or argv[0] not in BENCHES:
        raise SystemExit(f"{USAGE}\n(python -m si.bench --help lists the commands and their options)")
    importlib.import_module(f"si.bench.{argv[0]}").main(argv[1:])


def cli() -> None:
    """The ``si-bench`` command (pyproject.toml): ``python -m si.bench`` with the process's arguments."""
    main(sys.argv[1:])


if __name__ == "__main__":
    cli()
