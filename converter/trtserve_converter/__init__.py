"""trtserve converter: SavedModel -> TF-TRT, run as the serving pod's initContainer."""

__version__ = "0.1.0"
