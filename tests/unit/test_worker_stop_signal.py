"""Where a stop signal may raise out of an idle worker: never inside an object's `__del__`,
where Python would print the exception and drop it."""

from __future__ import annotations

import gc
import sys
from types import FrameType
from typing import ClassVar

from workers.shutdown import in_finalizer


class Finalized:
    seen: ClassVar[list[bool]] = []

    def __del__(self) -> None:
        Finalized.seen.append(in_finalizer(sys._getframe()))


def frame_here() -> FrameType:
    return sys._getframe()


def test_a_signal_inside_a_finalizer_is_told_apart() -> None:
    Finalized.seen.clear()
    Finalized()  # dropped at once: its `__del__` runs here
    gc.collect()
    assert Finalized.seen == [True]
    assert not in_finalizer(frame_here())
    assert not in_finalizer(None)
