"""What a run's training steps cost: wall-clock and process CPU (core) time, the thread counts and the
devices, as the model card's ``training.compute`` records them (:class:`explorer.training.Training`)."""
from __future__ import annotations

from typing import Any


class Compute:
    """Seconds of the training steps, wall clock and process CPU time (summed over threads), with the
    thread counts and devices used in turn. A sum begun late (old states and cards kept one kind of
    time only) starts at step ``wall_from`` / ``core_from``; its hours are then unknown (None)."""

    def __init__(self, wall: float = 0.0, core: float = 0.0, wall_from: int = 0, core_from: int = 0,
                 threads: list[int | None] | None = None, devices: list[str | None] | None = None):
        self.wall, self.core, self.wall_from, self.core_from = wall, core, wall_from, core_from
        self.threads, self.devices = list(threads or []), list(devices or [])

    def begin(self, threads: int, device: str) -> None:
        for values, value in ((self.threads, threads), (self.devices, device)):
            if not values or values[-1] != value:
                values.append(value)

    def hours(self) -> dict[str, float | None]:
        """``{"wall_hours", "core_hours"}`` of all steps so far (None where not recorded from step 0)."""
        return {"wall_hours": None if self.wall_from else round(self.wall / 3600, 3),
                "core_hours": None if self.core_from else round(self.core / 3600, 3)}

    def card(self) -> dict[str, Any]:
        one = lambda values: values[0] if len(values) == 1 else list(values)  # noqa: E731
        out: dict[str, Any] = {**self.hours(), "threads": one(self.threads), "device": one(self.devices)}
        notes = [f"{kind} time not recorded before step {start} ({seconds / 3600:.3f} h since)"
                 for kind, seconds, start in (("wall", self.wall, self.wall_from), ("core (CPU)", self.core, self.core_from)) if start]
        if None in self.threads:
            notes.append("thread count not recorded for the earlier steps")
        if notes:
            out["note"] = "; ".join(notes)
        return out

    def state(self) -> dict[str, Any]:
        return {"wall_seconds": self.wall, "core_seconds": self.core, "wall_from_step": self.wall_from,
                "core_from_step": self.core_from, "threads": self.threads, "devices": self.devices}

    @classmethod
    def from_state(cls, state: dict[str, Any], legacy: str) -> Compute:
        """From a state.json; one written before the split kept ``seconds`` of one kind, ``legacy``
        (``core``: process CPU time, as train.py measured; ``wall``: wall time, as train_energy.py did)."""
        c = state.get("compute")
        if isinstance(c, dict):
            return cls(c["wall_seconds"], c["core_seconds"], c["wall_from_step"], c["core_from_step"], c["threads"], c["devices"])
        seconds, step = float(state.get("seconds", 0.0)), int(state.get("step", 0))
        threads = [state.get("args", {}).get("threads") or None]  # 0: torch's default, not recorded
        if legacy == "core":
            return cls(0.0, seconds, step, 0, threads, ["cpu"])
        return cls(seconds, 0.0, 0, step, threads, ["cpu"])

    @classmethod
    def from_card(cls, training: dict[str, Any], legacy: str) -> Compute:
        """From a card's ``training`` section (``compute``, or the ``cpu_hours`` of older cards)."""
        step = int(training.get("steps", 0))
        c = training.get("compute")
        if not isinstance(c, dict):
            return cls.from_state({"seconds": float(training.get("cpu_hours") or 0.0) * 3600, "step": step}, legacy)
        wall, core = c.get("wall_hours"), c.get("core_hours")
        listed = lambda v: list(v) if isinstance(v, list) else [v]  # noqa: E731
        return cls((wall or 0.0) * 3600, (core or 0.0) * 3600, 0 if wall is not None else step,
                   0 if core is not None else step, listed(c.get("threads")), listed(c.get("device")))


def renamed_hours(entry: dict[str, Any], legacy: str) -> dict[str, Any]:
    """A history entry with the ``cpu_hours`` of older states and cards renamed for what it measured."""
    if "cpu_hours" not in entry:
        return entry
    rest = {k: v for k, v in entry.items() if k not in ("step", "cpu_hours")}
    hours = entry["cpu_hours"]
    named = {"wall_hours": hours, "core_hours": None} if legacy == "wall" else {"wall_hours": None, "core_hours": hours}
    return {"step": entry.get("step"), **named, **rest}
