"""A simulated couple (or one person, or three) in a room with the orb.

The world advances every person together in steps of :data:`sims.person.STEP_S` on the
injected clock, so they can see the orb and each other, and hands what each strap
senses to that strap's stream. A strap in an outage delivers nothing; the person goes
on breathing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import numpy as np

from coach.clock import Clock
from coach.types import AccChunk, EcgChunk, HeartRate, PacerState, StrapEvent
from sims.person import STEP_S, Person, Signals
from sims.scenarios import Scenario, get_scenario

log = logging.getLogger(__name__)

HR_NOTIFY_S = 1.0  # a strap sends one Heart Rate Measurement a second
QUEUE_SIZE = 256  # events; the world waits rather than drop


class World:
    """People of a scenario, stepped together; one event stream per strap."""

    def __init__(
        self,
        scenario: Scenario | str,
        seed: int,
        clock: Clock,
        orb: Callable[[], PacerState | None] = lambda: None,
    ) -> None:
        self.scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        self.clock = clock
        self.orb = orb
        root = np.random.default_rng(seed)
        children = root.spawn(len(self.scenario.people))
        self._rngs = dict(zip(self.scenario.labels, children, strict=True))
        self.people: dict[str, Person] = {}
        self._queues: dict[str, asyncio.Queue[StrapEvent | None]] = {}
        self._pending_beats: dict[str, list[tuple[float, float]]] = {}
        self._buffers: dict[str, list[Signals]] | None = None  # strap mode: sensed, not sent
        self._enders: set[asyncio.Task[None]] = set()
        self.t0_s: float | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.scenario.labels

    def sources(self) -> dict[str, AsyncIterator[StrapEvent]]:
        """One async stream of strap events per label (call before :meth:`run`)."""
        for label in self.labels:
            self._queues.setdefault(label, asyncio.Queue(QUEUE_SIZE))
        return {label: self._stream(label) for label in self.labels}

    def signal_source(self, label: str) -> Callable[[float], Signals | None]:
        """What ``label``'s strap has sensed since it last asked (for simulated straps).

        Using it switches the world to strap mode: signals wait in a buffer for the
        simulated strap (sims.straps) instead of going out as events, and outages are
        the strap's to play (see :func:`strap_specs`).
        """
        if self._buffers is None:
            self._buffers = {}
        self._buffers.setdefault(label, [])

        def take(_t_end_s: float) -> Signals | None:
            assert self._buffers is not None
            pending, self._buffers[label] = self._buffers[label], []
            return merge_signals(pending)

        return take

    async def _stream(self, label: str) -> AsyncIterator[StrapEvent]:
        queue = self._queues[label]
        while (event := await queue.get()) is not None:
            yield event

    async def run(self, duration_s: float) -> None:
        """Simulate ``duration_s`` seconds, then end every stream."""
        t = self.clock.now()
        self.t0_s = t
        self.people = {
            spec.label: Person(spec, self._rngs[spec.label], t0_s=t)
            for spec in self.scenario.people
        }
        self._pending_beats = {label: [] for label in self.labels}
        n_steps = round(duration_s / STEP_S)
        try:
            for k in range(1, n_steps + 1):
                t_next = t + k * STEP_S
                await self.clock.sleep_until(t_next)
                await self._step(t_next, k)
        finally:
            for queue in self._queues.values():  # end every stream, never block on it
                try:
                    queue.put_nowait(None)
                except asyncio.QueueFull:  # a reader still busy: end it after its backlog
                    task = asyncio.get_running_loop().create_task(queue.put(None))
                    self._enders.add(task)
                    task.add_done_callback(self._enders.discard)

    async def _step(self, t_s: float, k: int) -> None:
        orb = self.orb()
        rel = t_s - (self.t0_s or 0.0)
        for label, person in self.people.items():
            person.arousal_set = self.scenario.arousal_setpoint(label, rel, person.spec.arousal)
        rates = {label: p.rate_bpm for label, p in self.people.items()}
        phases = {label: p.phase for label, p in self.people.items()}
        arousals = {label: p.arousal for label, p in self.people.items()}
        for label, person in self.people.items():
            calmer = [o for o in self.people if o != label and arousals[o] < arousals[label]]
            partner = min(calmer, key=arousals.__getitem__) if calmer else None
            other = _partner_of(label, self.people)
            signals = person.advance(
                t_s, orb, rates[partner] if partner else None, phases.get(other) if other else None
            )
            if self._buffers is not None:
                self._buffers[label].append(signals)
            elif self.scenario.strap_present(label, rel):
                hr_due = k % round(HR_NOTIFY_S / STEP_S) == 0
                await self._deliver(label, signals, t_s, hr_due)
            else:
                self._pending_beats[label].clear()

    async def _deliver(self, label: str, sig: Signals, t_s: float, hr_due: bool) -> None:
        queue = self._queues.get(label)
        if queue is None:
            return
        beats = zip(sig.beat_t_s.tolist(), sig.rr_ms.tolist(), strict=True)
        self._pending_beats[label].extend(beats)
        if len(sig.acc.acc_mg):
            await queue.put(sig.acc)
        if len(sig.ecg.ecg_uv):
            await queue.put(sig.ecg)
        if hr_due:
            beats = self._pending_beats[label]
            self._pending_beats[label] = []
            rr = tuple(r for _, r in beats)
            hr = 60000.0 / float(np.mean(rr)) if rr else float("nan")
            times = tuple(b for b, _ in beats)
            await queue.put(HeartRate(t_s, label, hr, rr_ms=rr, beat_t_s=times, contact=True))


def _partner_of(label: str, people: dict[str, Person]) -> str | None:
    """The other member of the couple (the therapist T attunes to nobody)."""
    if label not in ("A", "B"):
        return None
    other = "B" if label == "A" else "A"
    return other if other in people else None


def merge_signals(parts: list[Signals]) -> Signals | None:
    """One Signals covering consecutive steps (None for none)."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    acc = np.vstack([p.acc.acc_mg for p in parts])
    ecg = np.concatenate([p.ecg.ecg_uv for p in parts])
    return Signals(
        acc=AccChunk(first.acc.t_s, first.acc.label, first.acc.fs_hz, acc),
        ecg=EcgChunk(first.ecg.t_s, first.ecg.label, first.ecg.fs_hz, ecg),
        beat_t_s=np.concatenate([p.beat_t_s for p in parts]),
        rr_ms=np.concatenate([p.rr_ms for p in parts]),
    )
