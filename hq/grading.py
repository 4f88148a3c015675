"""The grade of a site for a period, from its metrics: a documented, configurable, monotonic formula.

Each metric becomes a sub-score in [0, 1] by a straight line between two configured points
(`worst` → 0, `best` → 1, clamped): for metrics where more is better (GMV, growth, orders,
repurchase, uptime, sync health) `worst` < `best`; for the rates where less is better
(rejection, review, refund, complaints) `worst` > `best`. The score is the weighted mean × 100 and the grade
the first letter whose minimum score it reaches. Every sub-score is non-decreasing in a
good metric and non-increasing in a bad one, and the weights are non-negative, so the grade
never gets worse when one metric gets better (tests/hq/test_hq_grading_properties.py).
A metric that is not defined for the period (a rate with no orders, growth with no earlier
GMV) counts as neutral: 0.5. docs/partners.md has the defaults and the reasoning.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

GOOD = ("gmv_cents", "growth", "orders", "repurchase_rate", "uptime", "sync_health")
BAD = ("rejection_rate", "review_rate", "refund_rate", "complaints")
METRICS = GOOD + BAD
WHOLE = ("gmv_cents", "orders", "complaints")  # counts: a target is a whole number
NEUTRAL = 0.5


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    worst: float = Field(allow_inf_nan=False)
    best: float = Field(allow_inf_nan=False)
    weight: float = Field(ge=0, le=100, allow_inf_nan=False)


def _scales() -> dict[str, Scale]:
    return {
        "gmv_cents": Scale(worst=0, best=5_000_000, weight=3),  # ¥0 → ¥50,000 in the period
        "growth": Scale(worst=-0.5, best=0.5, weight=1),  # −50 % → +50 % against the period before
        "orders": Scale(worst=0, best=1000, weight=1),
        "repurchase_rate": Scale(worst=0, best=0.3, weight=2),  # share of buyers who bought twice or more
        "uptime": Scale(worst=0.9, best=0.999, weight=2),
        "sync_health": Scale(worst=0.9, best=0.999, weight=1),
        "rejection_rate": Scale(worst=0.2, best=0.01, weight=1),
        "review_rate": Scale(worst=0.2, best=0.02, weight=1),
        "refund_rate": Scale(worst=0.1, best=0.005, weight=2),
        "complaints": Scale(worst=10, best=0, weight=1),  # complaints HQ received in the period
    }


class GradingConfig(BaseModel):
    """What an operator may change (`kitctl hq grades config`, `PUT /v1/admin/grades/config`)."""

    model_config = ConfigDict(extra="forbid")
    scales: dict[str, Scale] = Field(default_factory=_scales)
    grades: dict[str, float] = Field(default_factory=lambda: {"A": 80.0, "B": 60.0, "C": 40.0, "D": 0.0})
    upgrade_after: int = Field(default=2, ge=1, le=12, description="periods graded A in a row before an upgrade")
    suspend_after: int = Field(default=2, ge=1, le=12, description="periods graded D in a row before a suspension")
    suspend_days: int = Field(default=7, ge=1, le=365)

    @model_validator(mode="before")
    @classmethod
    def _complaints_default(cls, data: Any) -> Any:
        """A configuration stored before complaints were graded gets their default scale (and only then)."""
        if isinstance(data, dict) and isinstance(data.get("scales"), dict) and "complaints" not in data["scales"] \
                and set(data["scales"]) == set(METRICS) - {"complaints"}:
            return {**data, "scales": {**data["scales"], "complaints": _scales()["complaints"].model_dump()}}
        return data

    @model_validator(mode="after")
    def _whole(self) -> "GradingConfig":
        if set(self.scales) != set(METRICS):
            raise PydanticCustomError("grading_rule", f"scales must name exactly: {', '.join(METRICS)}")
        for name, s in self.scales.items():
            if s.worst == s.best or (name in GOOD) != (s.worst < s.best):
                side = "below" if name in GOOD else "above"
                raise PydanticCustomError("grading_rule", f"scales.{name}: worst must be {side} best")
        if list(self.grades) != ["A", "B", "C", "D"] or self.grades["D"] != 0 \
                or not self.grades["A"] > self.grades["B"] > self.grades["C"] > 0:
            raise PydanticCustomError("grading_rule", "grades: A > B > C > D = 0, in that order")
        if sum(s.weight for s in self.scales.values()) <= 0:
            raise PydanticCustomError("grading_rule", "scales: at least one weight above 0")
        return self


def sub_score(value: float | None, scale: Scale) -> float:
    """0 at `worst`, 1 at `best`, a straight line between, clamped; None (undefined) is neutral."""
    if value is None:
        return NEUTRAL
    return min(1.0, max(0.0, (value - scale.worst) / (scale.best - scale.worst)))


def score(metrics: dict[str, Any], config: GradingConfig) -> float:
    total = sum(s.weight for s in config.scales.values())
    return round(100 * sum(sub_score(metrics.get(n), s) * s.weight for n, s in config.scales.items()) / total, 2)


def grade_of(points: float, config: GradingConfig) -> str:
    return next(letter for letter, least in config.grades.items() if points >= least)


def to_raise(metrics: dict[str, Any], config: GradingConfig, top: int = 3) -> list[str]:
    """The metrics whose improvement would add most to the score (what would raise the grade)."""
    gains = sorted(((1 - sub_score(metrics.get(n), s)) * s.weight, n) for n, s in config.scales.items())
    return [n for gain, n in reversed(gains) if gain > 0][:top]


def next_line(metrics: dict[str, Any], config: GradingConfig) -> dict[str, Any]:
    """What would raise the grade, concretely: the next grade, the points its line is away, and per metric
    that can still move either the value that alone reaches the line (`alone`) or the most it could add.

    Undefined metrics (None) are left out: a site cannot move a rate it has no orders for. Each metric is
    taken alone, the others unchanged (raising GMV also raises growth, so the real gain is never less).
    Each target is checked with `score` itself, so it reaches the line as the grade is computed.
    """
    points = score(metrics, config)
    letters = list(config.grades)
    current = grade_of(points, config)
    if current == letters[0]:
        return {"grade": current, "next_grade": None, "points_needed": 0.0, "steps": []}
    upper = letters[letters.index(current) - 1]
    line = config.grades[upper]
    steps = []
    for name, s in config.scales.items():
        value = metrics.get(name)
        if value is None or s.weight == 0 or sub_score(value, s) >= 1:
            continue
        best = score({**metrics, name: s.best}, config)
        if best <= points:
            continue
        alone = best >= line
        target = _reaching(metrics, name, s, line, config) if alone else s.best
        steps.append({"metric": name, "value": value, "target": target, "alone": alone,
                      "points": round(min(best, line) - points, 2),
                      "share": round(abs(target - value) / abs(s.best - s.worst), 4)})
    steps.sort(key=lambda st: (not st["alone"], st["share"] if st["alone"] else -st["points"], st["metric"]))
    return {"grade": current, "next_grade": upper, "points_needed": round(line - points, 2), "steps": steps}


def _reaching(metrics: dict[str, Any], name: str, scale: Scale, line: float, config: GradingConfig) -> float:
    """The value of `name` nearest its current one at which the score (as graded, rounded) reaches `line`:
    bisected between the current value (short of it) and `best` (reaching it), then rounded towards better
    to the metric's unit — the score is monotonic in the metric, so the rounded value reaches it too."""
    short, reach = float(metrics[name]), float(scale.best)
    for _ in range(64):
        middle = (short + reach) / 2
        if score({**metrics, name: middle}, config) >= line:
            reach = middle
        else:
            short = middle
    return _towards_better(name, reach)


def _unit(name: str) -> float:
    return 1.0 if name in WHOLE else 1e-6  # whole cents, orders and complaints; rates to six places


def _towards_better(name: str, value: float) -> float:
    """`value` rounded to the metric's unit, up where more is better, down where less is."""
    steps = value / _unit(name)
    whole = math.ceil(steps - 1e-9) if name in GOOD else math.floor(steps + 1e-9)
    return whole if _unit(name) == 1.0 else round(whole * _unit(name), 6)
