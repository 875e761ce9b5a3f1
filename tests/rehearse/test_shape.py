"""The arrival curve as Locust's shape asks for it: users one second ahead on the curve plus
the attackers, a spawn rate that reaches each target within the second, the end of the curve,
and the mix as integer weights."""

from __future__ import annotations

from rostra.rehearse.scenario import Audience, CurvePoint
from rostra.rehearse.shape import ArrivalShape

CURVE = (CurvePoint(0, 0), CurvePoint(10, 100), CurvePoint(20, 100), CurvePoint(22, 40))


def test_shape_follows_the_curve_one_second_ahead_with_attackers_on_top() -> None:
    shape = ArrivalShape(Audience(curve=CURVE), attackers=2)
    assert shape.tick(0) == (12, 12.0)  # 10 listeners due at 1 s, and the 2 attackers at once
    assert shape.tick(4.0) == (52, 10.0)
    assert shape.tick(15) == (102, 1.0)  # steady: the least rate
    assert shape.tick(20) == (72, 30.0)  # the leave: 30 a second
    assert shape.tick(21.5) == (42, 15.0)
    assert shape.tick(22) is None
    assert shape.tick(30) is None


def test_shape_weights_follow_the_mix_and_leave_out_a_kind_without_share() -> None:
    audience = Audience(hls=0.7, progressive=0.0, interactive=0.3, curve=CURVE)
    assert ArrivalShape(audience).weights() == {"HlsListener": 700, "InteractiveListener": 300}
    tiny = Audience(hls=1000, progressive=0.1, interactive=0, curve=CURVE)
    assert ArrivalShape(tiny).weights() == {"HlsListener": 1000, "ProgressiveListener": 1}
