"""When detect, run on the pre-capture context, must run again on the merged one."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Capture, Detection
from ..taxonomy import CRITICAL_SLOTS


def triggers(
    detection: Detection,
    capture: Capture,
    before: Mapping[str, str],
    *,
    min_confidence: float = 0.7,
    max_new_slots: int = 3,
) -> tuple[str, ...]:
    new = {name for name in capture.slots if name not in before}
    fired = []
    if detection.confidence < min_confidence:
        fired.append("low_confidence")
    if new & CRITICAL_SLOTS:
        fired.append("critical_slot")
    if len(new) > max_new_slots:
        fired.append("many_slots")
    return tuple(fired)
