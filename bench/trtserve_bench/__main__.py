"""`python -m trtserve_bench` is `trt-bench`."""

import sys

from trtserve_bench.cli import main

sys.exit(main())
