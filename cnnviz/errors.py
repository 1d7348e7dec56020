"""Errors raised by cnnviz. Messages name the layer, the shape or the field at fault."""


class AnalysisError(ValueError):
    """The model could not be analyzed with this input; the message says where and why.

    ``layer`` is the qualified name of the module that was running ("" for the root, None
    when unknown); ``too_small`` is true when the input is too small for the network.
    """

    def __init__(self, message: str, layer: str | None = None, too_small: bool = False) -> None:
        super().__init__(message)
        self.layer = layer
        self.too_small = too_small
