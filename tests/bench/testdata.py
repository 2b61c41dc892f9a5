"""Where TF Serving's own test SavedModel is (read-only, never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTDATA = "shared/fixtures/tensorflow-serving-testdata/saved_model_half_plus_two_cpu/00000123"
# shared/ lies beside the clone (CI, /work/main) or beside the worktrees' folder (/work/wt/*).
HALF_PLUS_TWO = next(
    (root / TESTDATA for root in REPO_ROOT.parents[:2] if (root / TESTDATA).is_dir()),
    REPO_ROOT.parent / TESTDATA,
)
MODEL_NAME = "half_plus_two"
MODEL_VERSION = 123
