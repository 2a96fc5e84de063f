"""ASCII maps of the SSD games (Leibo et al. 2017; Hughes et al. 2018) and of Box trapped.

Harvest and Cleanup maps, and the small test maps, are the original ones
(``social_dilemmas/maps.py`` and ``tests/test_envs.py`` of eugenevinitsky/sequential_social_dilemma_games).
Cell characters: ``@`` wall, ``P`` spawn point (floor), ``A`` apple cell (apple present at reset),
``' '`` floor; Cleanup: ``B`` apple-spawn cell (empty at reset), ``H`` waste, ``R`` river,
``S`` stream; Box trapped: ``T`` the trapped agent's cell, ``D`` the box door (a wall until opened).
"""

from __future__ import annotations

from pathlib import Path

HARVEST = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@ P   P      A    P AAAAA    P  A P  @",
    "@  P     A P AA    P    AAA    A  A  @",
    "@     A AAA  AAA    A    A AA AAAA   @",
    "@ A  AAA A    A  A AAA  A  A   A A   @",
    "@AAA  A A    A  AAA A  AAA        A P@",
    "@ A A  AAA  AAA  A A    A AA   AA AA @",
    "@  A A  AAA    A A  AAA    AAA  A    @",
    "@   AAA  A      AAA  A    AAAA       @",
    "@ P  A       A  A AAA    A  A      P @",
    "@A  AAA  A  A  AAA A    AAAA     P   @",
    "@    A A   AAA  A A      A AA   A  P @",
    "@     AAA   A A  AAA      AA   AAA P @",
    "@ A    A     AAA  A  P          A    @",
    "@       P     A         P  P P     P @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
)

CLEANUP = (
    "@@@@@@@@@@@@@@@@@@",
    "@RRRRRR     BBBBB@",
    "@HHHHHH      BBBB@",
    "@RRRRRR     BBBBB@",
    "@RRRRR  P    BBBB@",
    "@RRRRR    P BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRRR      BBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@RRRRR   P P BBBB@",
    "@HHHHH   P  BBBBB@",
    "@RRRRRR    P BBBB@",
    "@HHHHHH P   BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH    P  BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHHH  P P BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH       BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHHH      BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH       BBBBB@",
    "@@@@@@@@@@@@@@@@@@",
)

# Small maps of the original unit tests (MINI_HARVEST_MAP, MINI_CLEANUP_MAP).
HARVEST_MINI = ("@@@@@@", "@ P  @", "@  AA@", "@  AA@", "@  AP@", "@@@@@@")
CLEANUP_MINI = ("@@@@@@", "@ P  @", "@H BB@", "@R BB@", "@S BP@", "@@@@@@")

# Box trapped (our design, docs/box_trapped.md): the box is the 1-cell room T in the lower left;
# its door D opens from the cell above it. Apples (A) regrow forever outside.
BOX_TRAPPED = (
    "@@@@@@@@@@@@@",
    "@P    A    P@",
    "@    AAA    @",
    "@ A   A   A @",
    "@AAA     AAA@",
    "@ A   P   A @",
    "@     A  P  @",
    "@AAA AAA    @",
    "@A@@AAA    P@",
    "@@DAA@@@@@@@@",
    "@@T@@@@@@@@@@",
    "@@@@@@@@@@@@@",
)

BUILT_IN_MAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "harvest": {"harvest": HARVEST, "harvest_mini": HARVEST_MINI},
    "cleanup": {"cleanup": CLEANUP, "cleanup_mini": CLEANUP_MINI},
    "box_trapped": {"box_trapped": BOX_TRAPPED},
}
"""The built-in games' maps; the first entry of each is the game's default."""

MAPS: dict[str, dict[str, tuple[str, ...]]] = {}
"""Known maps per registered game (``si.envs.register_env`` fills it); the first entry is the default."""


def get_map(env_name: str, map_name: str | None) -> tuple[str, ...]:
    """The ASCII rows of ``map_name`` (default map of ``env_name`` when None); ValueError if unknown."""
    if env_name not in MAPS:
        raise ValueError(f"unknown env name {env_name!r}; expected one of {tuple(MAPS)}")
    maps = MAPS[env_name]
    if map_name is None:
        return next(iter(maps.values()))
    if map_name not in maps:
        raise ValueError(f"unknown map name {map_name!r} for env {env_name!r}; expected one of {tuple(maps)}")
    return maps[map_name]


def read_map_file(path: str | Path) -> tuple[str, ...]:
    """The ASCII rows of a map file (one row per line, the characters of the built-in maps;
    trailing blank lines ignored); ValueError naming the file when it cannot be read or is not a
    rectangle."""
    try:
        rows = tuple(Path(path).read_text().rstrip("\n").split("\n"))
    except OSError as exc:
        raise ValueError(f"cannot read map file {path}: {exc.strerror or exc}") from None
    try:
        check_rows(rows)
    except ValueError as exc:
        raise ValueError(f"map file {path}: {exc}") from None
    return rows


def map_rows(env_name: str, map_name: str | None, map_file: str | None = None) -> tuple[str, ...]:
    """The rows of ``map_file`` when given, else of the named map (:func:`get_map`)."""
    return read_map_file(map_file) if map_file else get_map(env_name, map_name)


def check_rows(rows: tuple[str, ...] | list[str]) -> None:
    """Raise ValueError unless ``rows`` is a non-empty rectangle of strings."""
    if not rows or any(len(r) != len(rows[0]) for r in rows) or len(rows[0]) == 0:
        raise ValueError("an ASCII map must be a non-empty list of equally long strings")
