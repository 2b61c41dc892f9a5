"""`python -m trtserve_converter` = `trt-convert`."""

import sys

from trtserve_converter.cli import main

sys.exit(main())
