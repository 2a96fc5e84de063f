"""Dispatch ``python -m si.bench {env,train,a3c} [options]`` to the benchmark modules."""

import importlib
import sys

BENCHES = ("env", "train", "a3c")


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in BENCHES:
        raise SystemExit(f"usage: python -m si.bench {{{','.join(BENCHES)}}} [options]")
    importlib.import_module(f"si.bench.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
