"""trtserve operator: converges TRTModel resources into GPU serving workloads."""

__version__ = "0.1.0"
