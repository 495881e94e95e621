"""Where the tests find the shared upstream fixtures (docs/design.md §9)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# shared/ sits beside the repository checkout; ZEN_SHARED_FIXTURES points elsewhere if needed.
SHARED_FIXTURES = Path(
    os.environ.get("ZEN_SHARED_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures")
).resolve()
