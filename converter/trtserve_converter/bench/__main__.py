"""`python -m trtserve_converter.bench` is `trt-bench`."""

import sys

from trtserve_converter.bench.cli import main

sys.exit(main())
