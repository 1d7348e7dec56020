"""Where a bench script writes its results: one free stem per run, never over an earlier one."""

from __future__ import annotations

from pathlib import Path


def free_stem(folder: Path, base: str) -> Path:
    """``folder/base``, or ``base_2``, ``base_3``... where a .txt or .json of that stem is
    there already: a second run of the day never overwrites the first.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> free_stem(d, "app_speed_2026-12-03").name
    'app_speed_2026-12-03'
    >>> _ = (d / "app_speed_2026-12-03.json").write_text("[]")
    >>> free_stem(d, "app_speed_2026-12-03").name
    'app_speed_2026-12-03_2'
    """
    stem, n = base, 1
    while (folder / f"{stem}.txt").exists() or (folder / f"{stem}.json").exists():
        n += 1
        stem = f"{base}_{n}"
    return folder / stem
