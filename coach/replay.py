"""Replay a recording through the same pipeline, on any clock.

:func:`replay_sources` gives one async stream of strap events per label, each event
released when the injected clock reaches the moment the live session received it; the
session cannot tell a replay from straps or a simulation. :func:`replay_commands`
re-applies the therapist's commands (and so their markers) at their recorded times. On
a :class:`~coach.clock.VirtualClock` a replay runs as fast as the CPU allows and gives
the states of the live session again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from coach.clock import Clock
from coach.recording import Entry, RecordingReader
from coach.types import Command, HeartRate, Label, Marker, StrapEvent


class _Offset:
    """Shift from recorded host time to replay clock time, fixed at the first use."""

    def __init__(self, clock: Clock, t_origin_s: float, start_s: float | None) -> None:
        self._clock, self._origin, self._start = clock, t_origin_s, start_s
        self.value: float | None = None

    def get(self) -> float:
        if self.value is None:
            start = self._start if self._start is not None else self._clock.now()
            self.value = start - self._origin
        return self.value


def shift_event(event: Any, dt_s: float) -> Any:
    """The same event ``dt_s`` seconds later (beat times too); itself when ``dt_s`` is 0."""
    if dt_s == 0.0:
        return event
    if isinstance(event, HeartRate):
        beats = tuple(t + dt_s for t in event.beat_t_s)
        return dataclasses.replace(event, t_s=event.t_s + dt_s, beat_t_s=beats)
    if hasattr(event, "t_s"):
        return dataclasses.replace(event, t_s=event.t_s + dt_s)
    return event


def replay_sources(reader: RecordingReader, clock: Clock, *, start_s: float | None = None,
                   labels: tuple[Label, ...] | None = None
                   ) -> dict[Label, AsyncIterator[StrapEvent]]:
    """One stream of recorded raw events per label, timed on ``clock``.

    The recording's session origin maps to ``start_s`` (default: ``clock.now()`` when
    the first stream is first awaited), so a replay on a fresh virtual clock keeps the
    recorded times exactly.
    """
    offset = _Offset(clock, reader.t_origin_s, start_s)
    chosen = labels if labels is not None else reader.labels
    return {label: _stream(reader, label, clock, offset) for label in chosen}


async def _stream(reader: RecordingReader, label: Label, clock: Clock,
                  offset: _Offset) -> AsyncIterator[StrapEvent]:
    for entry in reader.raw(label):
        dt = offset.get()
        await clock.sleep_until(entry.rx_s + dt)
        # live, a strap event reaches the session one loop turn after its timer fired
        # (the producer wakes, then hands it over); a state tick due at the same moment
        # runs first. One more turn here keeps that order, so states come out the same.
        await clock.sleep(0.0)
        yield shift_event(entry.item, dt)


def _commands(reader: RecordingReader) -> list[Entry]:
    """Commands, plus markers no command made (a marker command makes its own marker)."""
    out: list[Entry] = []
    made: list[tuple[float, str]] = []
    for entry in reader.entries(("command", "marker")):
        if entry.kind == "command":
            out.append(entry)
            if entry.item.kind == "marker":
                made.append((entry.rx_s, str(entry.item.value or "note")))
        elif (entry.rx_s, entry.item.kind) in made:
            made.remove((entry.rx_s, entry.item.kind))
        else:
            m: Marker = entry.item
            out.append(dataclasses.replace(entry, item=Command("marker", m.kind, m.note)))
    return out


async def replay_commands(reader: RecordingReader, clock: Clock,
                          apply: Callable[[Command], None], *,
                          start_s: float | None = None) -> int:
    """Call ``apply(command)`` (e.g. ``session.command``) at each recorded time.

    Returns how many commands were applied.
    """
    offset = _Offset(clock, reader.t_origin_s, start_s)
    n = 0
    for entry in _commands(reader):
        await clock.sleep_until(entry.rx_s + offset.get())
        apply(entry.item)
        n += 1
    return n


async def replay_session(reader: RecordingReader, session: Any,
                         duration_s: float | None = None) -> None:
    """Run ``session`` (a :class:`coach.session.Session`) on the recording's events."""
    clock = session.clock
    start = clock.now()
    sources = replay_sources(reader, clock, start_s=start, labels=tuple(session.labels))
    if duration_s is None:
        duration_s = reader.duration_s
    async with asyncio.TaskGroup() as tg:
        # the session starts first: commands before its start would be lost
        tg.create_task(session.run(sources, duration_s), name="coach.replay.session")
        tg.create_task(replay_commands(reader, clock, session.command, start_s=start),
                       name="coach.replay.commands")
