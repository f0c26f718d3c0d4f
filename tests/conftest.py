import os

import pytest


def pytest_collection_modifyitems(config, items):
    """Long sweeps (marker ``slow``) run only with ATTN_RTL_SLOW=1 or an explicit -m selecting them."""
    if os.environ.get("ATTN_RTL_SLOW") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with ATTN_RTL_SLOW=1 (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
