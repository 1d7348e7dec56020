"""Golden text summaries: the printed table for a few zoo models, stored in tests/golden/.

Regenerate deliberately with ``pytest tests/test_golden.py --update-golden`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnviz
from cnnviz import zoo

GOLDEN = Path(__file__).parent / "golden"
CASES = [("alexnet", {}), ("resnet18", {}), ("googlenet", {}), ("resnet20", {})]


@pytest.mark.parametrize(("name", "config"), CASES, ids=[c[0] for c in CASES])
def test_golden_summary(name, config, update_golden):
    m = zoo.get_model(name, device="meta", **config)
    text = str(cnnviz.analyze(m, m.default_input_size)) + "\n"
    path = GOLDEN / f"{name}.txt"
    if update_golden:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run pytest with --update-golden"
    assert text == path.read_text()
