"""Errors raised by cnnviz. Messages name the layer, the shape or the field at fault."""


class AnalysisError(ValueError):
    """The model could not be analyzed with this input; the message says where and why."""
