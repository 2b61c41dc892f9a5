"""`trt-bench`: closed-loop load generator for TensorFlow Serving (docs/bench.md).

Runs in the converter image; never imports TensorFlow itself (only the TF Serving API
protos, see `protos.py`).
"""
