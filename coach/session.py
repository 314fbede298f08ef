"""A session: strap streams in, session states out.

``Session.run`` reads one stream of strap events per partner (drivers, simulated
straps or a replayed recording: it cannot tell them apart), feeds each partner's
tracker, and every :data:`STATE_PERIOD_S` asks the co-regulator for the anchor and the
pacer and publishes a :class:`~coach.types.SessionState` on ``states``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from coach.bus import Bus
from coach.clock import Clock
from coach.config import STATE_PERIOD_S
from coach.coregulator import COUPLE, CoRegulator
from coach.synchrony import Synchrony, round_figures
from coach.tracker import PartnerTracker
from coach.types import (
    RECEIPT_IDS,
    Command,
    HeartRate,
    Marker,
    Receipt,
    SessionState,
    StrapEvent,
)

log = logging.getLogger(__name__)

Sink = Callable[[Any], None]
TIE_S = 1e-6  # s: a command this close to a state tick counts as at its moment
COMMANDS_PER_S = 5  # commands applied per second of session; more are dropped and refused


class CommandRefused(RuntimeError):
    """A command the session will not take (it has ended); the message says why."""


class Refusals:
    """Commands refused for one reason since the last state: one summed receipt each."""

    def __init__(self) -> None:
        self._by_reason: dict[str, tuple[int, list[str], set[str]]] = {}
        self.total = 0  # since the last take()

    def add(self, cmd: Command, reason: str) -> None:
        count, ids, kinds = self._by_reason.setdefault(reason, (0, [], set()))
        if cmd.id and len(ids) < RECEIPT_IDS:
            ids.append(cmd.id)
        kinds.add(cmd.kind)
        self._by_reason[reason] = (count + 1, ids, kinds)
        self.total += 1

    def take(self) -> tuple[Receipt, ...]:
        """The summed receipts, and forget them."""
        out = tuple(
            Receipt("refused", next(iter(kinds)) if len(kinds) == 1 else "", tuple(ids),
                    reason, count)
            for reason, (count, ids, kinds) in self._by_reason.items()
        )
        self._by_reason.clear()
        self.total = 0
        return out


class Session:
    """The pipeline for one couple (and optionally a therapist strap)."""

    def __init__(self, clock: Clock, labels: tuple[str, ...] = ("A", "B")) -> None:
        self.clock = clock
        self.labels = labels
        self.states: Bus[SessionState] = Bus()
        self.trackers = {label: PartnerTracker(label) for label in labels}
        self.t_origin_s = 0.0
        self.solo = len([k for k in labels if k in COUPLE]) == 1
        self.coregulator = CoRegulator(0.0, solo=self.solo)
        self.synchrony = Synchrony()
        self._sync_due_s = 0.0
        self._extra: dict[str, Any] = {}  # the state's extra figures (synchrony, once a second)
        self.errors = 0
        self._sinks: list[Sink] = []
        self._queued: list[tuple[float, Command, Marker | None]] = []  # see command()
        self._started = False
        self.ended = False
        self.refusals = Refusals()
        self.commands_dropped = 0  # beyond COMMANDS_PER_S
        self._command_times: deque[float] = deque()  # of commands taken in the last second
        # latency of heart-rate notifications (stamped on arrival by the driver), seconds:
        # arrival -> taken in by the tracker, and arrival -> first state that includes it
        self.ingest_lag_s: deque[float] = deque(maxlen=100_000)
        self.state_lag_s: deque[float] = deque(maxlen=100_000)
        self._awaiting_state: list[float] = []

    def add_sink(self, sink: Sink) -> None:
        """Call ``sink(event)`` for every raw strap event, marker and command, in order."""
        self._sinks.append(sink)

    def _emit(self, item: Any) -> None:
        for sink in self._sinks:
            sink(item)

    def command(self, cmd: Command) -> None:
        """Take a command from a view; never blocks.

        It is recorded at once and applied at the first state tick strictly after it
        (one at the very moment of a tick waits for the next), so that a replay, whose
        commands and ticks may fall due in another order at the same instant, applies
        it at the same tick as the live session did.

        At most :data:`COMMANDS_PER_S` are taken per second of session; the rest are
        dropped unrecorded, counted, and answered by one summed refusal in the next
        state. Raises :class:`CommandRefused` once the session has ended.
        """
        if self.ended:
            raise CommandRefused("session ended")
        now = self.clock.now() if self._started else self.t_origin_s
        recent = self._command_times
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= COMMANDS_PER_S:
            self.commands_dropped += 1
            self.refusals.add(cmd, "rate limited")
            if self.commands_dropped & (self.commands_dropped - 1) == 0:  # 1, 2, 4, 8...
                log.warning("command %s dropped: over %d a second (%d dropped so far)",
                            cmd.kind, COMMANDS_PER_S, self.commands_dropped)
            return
        recent.append(now)
        self._emit(cmd)
        marker = None
        if cmd.kind == "marker":
            marker = Marker(now, str(cmd.value or "note"), cmd.note)
            self._emit(marker)
        self._queued.append((now, cmd, marker))

    def _apply_due(self, t_s: float) -> tuple[tuple[Marker, ...], tuple[Receipt, ...]]:
        """Apply the commands due before the tick at ``t_s``: their markers and receipts."""
        receipts = self.refusals.take()
        if not self._queued or self._queued[0][0] >= t_s - TIE_S:
            return (), receipts
        due = [q for q in self._queued if q[0] < t_s - TIE_S]
        self._queued = [q for q in self._queued if q[0] >= t_s - TIE_S]
        markers: list[Marker] = []
        applied = [Receipt("applied", cmd.kind, (cmd.id,)) for _, cmd, _ in due if cmd.id]
        for t, cmd, marker in due:
            if marker is not None:
                markers.append(marker)
            elif cmd.kind == "baseline":
                for tracker in self.trackers.values():
                    tracker.calm.start_baseline(t, float(cmd.value or 120.0))
            else:
                self.coregulator.command(cmd)
        return tuple(markers), (*applied, *receipts)

    async def run(
        self,
        sources: Mapping[str, AsyncIterator[StrapEvent]],
        duration_s: float | None = None,
    ) -> None:
        """Process the streams until ``duration_s`` has passed (or the streams end)."""
        self.t_origin_s = self.clock.now()
        self.coregulator.t_origin_s = self.t_origin_s
        self._sync_due_s = self.t_origin_s + 1.0
        for tracker in self.trackers.values():
            tracker.calm.start_baseline(self.t_origin_s)
        self._started = True
        try:
            await self._run_tasks(sources, duration_s)
        finally:
            self.ended = True  # commands from now on are refused

    async def _run_tasks(
        self,
        sources: Mapping[str, AsyncIterator[StrapEvent]],
        duration_s: float | None,
    ) -> None:
        async with asyncio.TaskGroup() as tg:
            feeders = [
                tg.create_task(self._feed(label, stream), name=f"coach[{label}].feed")
                for label, stream in sources.items()
            ]
            ticker = tg.create_task(self._tick(duration_s), name="coach.tick")
            if duration_s is None:  # until the streams end (a replay, a finite source)
                await asyncio.gather(*feeders)
                ticker.cancel()
            else:  # live streams never end by themselves: stop them at the end
                await ticker
                for _ in range(8):  # let events already queued at the last instant in
                    await asyncio.sleep(0)
                for feeder in feeders:
                    feeder.cancel()

    async def _feed(self, label: str, stream: AsyncIterator[StrapEvent]) -> None:
        async for event in stream:
            self.ingest(label, event)

    def ingest(self, label: str, event: StrapEvent) -> None:
        """Take one event of ``label``'s strap: to the sinks, then to the tracker."""
        self._emit(event)
        try:
            self.trackers[label].push(event)
        except Exception:  # one bad event must not end a session
            self.errors += 1
            log.exception("partner %s: event %s dropped", label, type(event).__name__)
        if isinstance(event, HeartRate):
            self.ingest_lag_s.append(self.clock.now() - event.t_s)
            self._awaiting_state.append(event.t_s)

    async def _tick(self, duration_s: float | None) -> None:
        k = 0
        while duration_s is None or k * STATE_PERIOD_S < duration_s - 1e-9:
            k += 1
            await self.clock.sleep_until(self.t_origin_s + k * STATE_PERIOD_S)
            self.publish(self.t_origin_s + k * STATE_PERIOD_S)

    def publish(self, t_s: float) -> SessionState:
        """Compute and publish the state at ``t_s``."""
        markers, receipts = self._apply_due(t_s)
        partners = {label: tr.state(t_s) for label, tr in self.trackers.items()}
        if t_s >= self._sync_due_s - 1e-9:
            self._sync_due_s += 1.0
            last = self.states.latest
            orb = last.pacer.phase_at(t_s) if last is not None and last.pacer else None
            sync = self.synchrony.add(
                {k: p.phase for k, p in partners.items()},
                {k: p.hr_bpm for k, p in partners.items()},
                orb,
                {k: p.talking for k, p in partners.items()},
            )
            # the orb follows the anchor: its locking to the orb says so, not the reverse
            pacer = last.pacer if last is not None else None
            follows = self.coregulator.anchor if pacer and pacer.mode == "follow" else None
            self._extra = {"synchrony": round_figures(sync) | {"orb_follows": follows}}
            if self.coregulator.handover is not None:  # the anchor's strap was lost: say so
                self._extra["anchor_handover"] = self.coregulator.handover
        sync = self.synchrony.latest
        pacer = self.coregulator.update(t_s, partners, sync.get("orb_ppc"))
        extra = self._extra
        left = [x for tr in self.trackers.values() if tr.label != "T"
                if (x := tr.calm.baseline_left_s(t_s)) is not None]
        if left:  # views say "listening" rather than what the orb is not doing yet
            extra = {**extra, "baseline_left_s": round(max(left), 1)}
        state = SessionState(t_s, partners, self.coregulator.anchor, pacer, markers, extra,
                             receipts=receipts)
        self.states.publish(state)
        if self._awaiting_state:
            now = self.clock.now()
            self.state_lag_s.extend(now - t for t in self._awaiting_state)
            self._awaiting_state.clear()
        return state
