"""Charts that teach: branch growth, log-scale stage bars, stable model colours, readable
timing axes (issue #12 §3, §5). Figures are checked directly on cnnviz.render; wiring by
AppTest."""

from __future__ import annotations

from pathlib import Path

import yaml

import cnnviz
from cnnviz import spec
from cnnviz.render import plots

EXAMPLES = Path(cnnviz.__file__).parent / "examples"


def _example(name: str):
    m = spec.build(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))
    return cnnviz.analyze(m, m.default_input_size)


# --------------------------------------------------------------------------- item 1
def test_rf_growth_shows_each_branch():
    # two 3x3 convs grow 3 -> 5; the single 5x5 beside them is 5 at depth 1 (the example's
    # whole point); the largest-per-depth curve showed a flat 5 and hid the stacked pair.
    fig = plots.rf_growth_plot(_example("two_3x3_vs_5x5"))
    by_name = {t.name: t for t in fig.data}
    main = by_name["RF size"]
    assert (list(main.x), list(main.y)) == ([1, 2], [3, 5])
    side = by_name["RF size, branches"]
    points = [(x, y) for x, y in zip(side.x, side.y, strict=True) if x is not None]
    assert (1, 5) in points and (2, 5) in points  # the 5x5 branch, joining the concat
    assert "single_5x5" in " ".join(str(c) for c in side.customdata)
