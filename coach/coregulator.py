"""Who anchors the couple, and where the orb goes.

Rules (see docs/coregulation.md):

- **Anchor**: the calmer partner (higher calm score). The other partner takes over only
  after leading by at least :data:`ANCHOR_MARGIN` for :data:`ANCHOR_DWELL_S` seconds
  without a break, so the orb never flips back and forth. The therapist strap ``T`` is
  never chosen automatically. The therapist can fix the anchor.
- **Pacer**: starts at the mean breathing rate of the partners whose rate is known
  (waiting up to :data:`PACER_START_WAIT_S` for all of them), then moves toward the
  anchor's rate within the slew limit. It holds its rate while the anchor's breathing
  is unknown or its strap is lost, and while paused. A fixed pace set by the therapist
  replaces the anchor's rate as the target (still slew-limited).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from coach.config import ANCHOR_DWELL_S, ANCHOR_MARGIN, PACER_START_WAIT_S
from coach.pacer import Pacer
from coach.types import Command, PacerState, PartnerState

log = logging.getLogger(__name__)

COUPLE = ("A", "B")


class AnchorChooser:
    """The calmer partner, with a margin and a dwell time."""

    def __init__(self, margin: float = ANCHOR_MARGIN, dwell_s: float = ANCHOR_DWELL_S) -> None:
        self.margin = margin
        self.dwell_s = dwell_s
        self.anchor: str | None = None
        self.changes = 0
        self._challenger_since: float | None = None

    def update(
        self, t_s: float, calm: Mapping[str, float | None], settled: bool = True
    ) -> str | None:
        """Update from calm scores; the first choice waits until ``settled`` or all are known."""
        known = {k: v for k, v in calm.items() if v is not None and k in COUPLE}
        couple = [k for k in calm if k in COUPLE]
        if not known or (self.anchor is None and len(known) < len(couple) and not settled):
            return self.anchor
        best = max(sorted(known), key=lambda k: known[k])  # type: ignore[arg-type,return-value]
        if self.anchor is None or self.anchor not in calm:
            self._set(best)
            return self.anchor
        mine = known.get(self.anchor)
        if best != self.anchor and mine is not None and known[best] - mine >= self.margin:  # type: ignore[operator]
            if self._challenger_since is None:
                self._challenger_since = t_s
            if t_s - self._challenger_since >= self.dwell_s:
                self._set(best)
        else:
            self._challenger_since = None
        return self.anchor

    def _set(self, label: str) -> None:
        if self.anchor is not None and label != self.anchor:
            self.changes += 1
            log.info("anchor: %s -> %s", self.anchor, label)
        self.anchor = label
        self._challenger_since = None


class CoRegulator:
    """Anchor and pacer from the partners' states and the therapist's commands."""

    def __init__(self, t_origin_s: float) -> None:
        self.t_origin_s = t_origin_s
        self.chooser = AnchorChooser()
        self.pacer: Pacer | None = None
        self.fixed_anchor: str | None = None
        self.fixed_pace_bpm: float | None = None
        self.paused = False
        self.ie_ratio: float | None = None

    @property
    def anchor(self) -> str | None:
        return self.fixed_anchor or self.chooser.anchor

    def command(self, cmd: Command) -> None:
        if cmd.kind == "pause":
            self.paused = True
        elif cmd.kind == "resume":
            self.paused = False
        elif cmd.kind == "anchor":
            self.fixed_anchor = cmd.value
        elif cmd.kind == "pace":
            self.fixed_pace_bpm = None if cmd.value is None else float(cmd.value)
        elif cmd.kind == "ratio":
            self.ie_ratio = float(cmd.value)

    def update(self, t_s: float, partners: Mapping[str, PartnerState]) -> PacerState | None:
        waited = t_s - self.t_origin_s >= PACER_START_WAIT_S
        self.chooser.update(t_s, {k: p.calm for k, p in partners.items()}, settled=waited)
        if self.pacer is None:
            self.pacer = self._start(t_s, partners)
            return None if self.pacer is None else self.pacer.state
        anchor = partners.get(self.anchor) if self.anchor else None
        target = anchor.rate_bpm if anchor is not None and anchor.status == "ok" else None
        mode = "follow"
        if self.fixed_pace_bpm is not None:
            target, mode = self.fixed_pace_bpm, "manual"
        holding = self.paused or target is None
        if self.paused:
            mode = "paused"
        return self.pacer.update(t_s, target, holding=holding, mode=mode, ie_ratio=self.ie_ratio)

    def _start(self, t_s: float, partners: Mapping[str, PartnerState]) -> Pacer | None:
        couple = [p for k, p in partners.items() if k in COUPLE]
        rates = [p.rate_bpm for p in couple if p.rate_bpm is not None]
        waited = t_s - self.t_origin_s >= PACER_START_WAIT_S
        if not rates or (len(rates) < len(couple) and not waited):
            return None
        start = self.fixed_pace_bpm or sum(rates) / len(rates)
        log.info("pacer starts at %.1f/min", start)
        return Pacer(t_s, start)
