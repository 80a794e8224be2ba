"""docs/dvg-build.md explains every reason code a ledger row can carry, with what to do."""

from __future__ import annotations

import re
from pathlib import Path

from dvg.engine.ledger import ENGINE_REASONS
from dvg.video import REASONS

REPO = Path(__file__).resolve().parents[3]
# Where the engine and its backends write a reason code.
_WRITES = (
    r'ClipStepError\(\s*"([a-z_]+)"',
    r'^\s*reason = "([a-z_]+)"',
    r'failure_reason\(\w+, "([a-z_]+)"\)',
    r'reason="([a-z_]+)"',
    r'\(\s*"([a-z_]+_error|no_clips|not_processed)",',
)


def test_every_reason_written_is_a_known_code():
    written = set()
    for path in [*(REPO / "dvg" / "engine").glob("*.py"), REPO / "dvg/backends/sidecar.py"]:
        text = path.read_text()
        for pattern in _WRITES:
            written |= set(re.findall(pattern, text, flags=re.MULTILINE))
    assert written and written <= set(REASONS) | set(ENGINE_REASONS), written


def test_every_reason_has_a_row_in_the_failure_table():
    doc = (REPO / "docs" / "dvg-build.md").read_text()
    table = doc[doc.index("## Failure reasons") :].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = {code for row in rows for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    missing = (set(REASONS) | set(ENGINE_REASONS)) - documented
    assert not missing, f"add these reasons to docs/dvg-build.md: {sorted(missing)}"
    assert all(len(row.split("|")) == 6 and row.split("|")[4].strip() for row in rows)
