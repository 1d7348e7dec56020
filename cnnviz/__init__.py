"""cnnviz: see why CNN architectures look the way they do.

>>> import cnnviz
>>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
>>> a.total_params, a.total_macs, a.receptive_field("layer4").size
(11689512, 1814073344, (435, 435))
"""

from cnnviz import zoo
from cnnviz.analysis import analyze
from cnnviz.errors import AnalysisError
from cnnviz.receptive import ReceptiveField
from cnnviz.result import Analysis, FallbackOp, LayerRecord
from cnnviz.rules.registry import register_rule
from cnnviz.training import TrainingStep, training_step

__version__ = "0.1.0"
__all__ = [
    "Analysis",
    "AnalysisError",
    "FallbackOp",
    "LayerRecord",
    "ReceptiveField",
    "TrainingStep",
    "__version__",
    "analyze",
    "register_rule",
    "training_step",
    "zoo",
]
