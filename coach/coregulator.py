"""Who anchors the couple, and where the orb goes.

Rules (explained for therapists in docs/coregulation.md):

- **Anchor**: the calmer partner (higher calm score). The other partner takes over only
  after leading by at least :data:`ANCHOR_MARGIN` for :data:`ANCHOR_DWELL_S` seconds
  without a break, so the orb never flips back and forth. The therapist strap ``T`` is
  never chosen automatically. The therapist can fix the anchor (``T`` included).
- **Pacer**: starts at the mean breathing rate of the partners whose rate is known
  (waiting up to :data:`PACER_START_WAIT_S` for all of them), then moves toward the
  anchor's rate within the slew limit. It holds its rate while any partner's arousal
  alert is set, while the anchor's breathing is unknown or its strap is lost, and while
  paused. A pace set by the therapist replaces the anchor's rate as the target.
- **Guide mode** (off by default; always on in solo mode): once every partner follows
  the orb (pairwise phase consistency above :data:`FOLLOW_PPC` for :data:`FOLLOW_S` seconds),
  the target becomes the resonance pace (:data:`RESONANCE_BPM`), still slew-limited.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from coach.calm import BASELINE_S
from coach.config import ANCHOR_DWELL_S, ANCHOR_MARGIN, PACER_START_WAIT_S, RESONANCE_BPM
from coach.pacer import Pacer
from coach.types import Command, PacerState, PartnerState

log = logging.getLogger(__name__)

COUPLE = ("A", "B")
FOLLOW_PPC = 0.5  # phase consistency with the orb that counts as following it (PLV ~0.7)
FOLLOW_S = 60.0  # seconds it must last
ANCHOR_GRACE_S = 30.0  # s after the baseline before an anchor is chosen from partial scores


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
        if self.anchor is None:
            self._set(best)
            return self.anchor
        mine = known.get(self.anchor)
        lead = known[best] - mine if mine is not None else 0.0  # type: ignore[operator]
        if best != self.anchor and lead >= self.margin:
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

    def __init__(self, t_origin_s: float, solo: bool = False) -> None:
        self.t_origin_s = t_origin_s
        self.solo = solo
        self.chooser = AnchorChooser()
        self.pacer: Pacer | None = None
        self.fixed_anchor: str | None = None
        self.fixed_pace_bpm: float | None = None
        self.paused = False
        self.guide = solo
        self.ie_ratio: float | None = None
        self.holds = 0  # times the pacer began holding for an alert
        self._alerting = False
        self._following_since: float | None = None

    @property
    def anchor(self) -> str | None:
        return self.fixed_anchor or self.chooser.anchor

    def command(self, cmd: Command) -> None:
        if cmd.kind == "pause":
            self.paused = True
        elif cmd.kind == "resume":
            self.paused = False
        elif cmd.kind == "anchor":
            self.fixed_anchor = None if cmd.value in (None, "auto") else str(cmd.value)
        elif cmd.kind == "pace":
            self.fixed_pace_bpm = None if cmd.value in (None, "auto") else float(cmd.value)
        elif cmd.kind == "ratio":
            self.ie_ratio = float(cmd.value)
        elif cmd.kind == "guide":
            self.guide = bool(cmd.value)

    def update(
        self,
        t_s: float,
        partners: Mapping[str, PartnerState],
        orb_ppc: Mapping[str, float | None] | None = None,
    ) -> PacerState | None:
        # the first anchor waits for every partner's calm score, unless a strap stays
        # silent well past the end of the baseline
        settled = t_s - self.t_origin_s >= BASELINE_S + ANCHOR_GRACE_S
        self.chooser.update(t_s, {k: p.calm for k, p in partners.items()}, settled=settled)
        if self.pacer is None:
            self.pacer = self._start(t_s, partners)
            return None if self.pacer is None else self.pacer.state
        target, mode = self._target(t_s, partners, orb_ppc or {})
        alerting = any(p.alert for k, p in partners.items() if k in COUPLE)
        if alerting and not self._alerting:
            self.holds += 1
            log.info("pacer holds: arousal alert")
        self._alerting = alerting
        holding = self.paused or alerting or target is None
        if self.paused:
            mode = "paused"
        elif alerting:
            mode = "alert"
        return self.pacer.update(t_s, target, holding=holding, mode=mode, ie_ratio=self.ie_ratio)

    def _target(
        self, t_s: float, partners: Mapping[str, PartnerState], orb_ppc: Mapping[str, float | None]
    ) -> tuple[float | None, str]:
        if self.fixed_pace_bpm is not None:
            return self.fixed_pace_bpm, "manual"
        if self.guide and self._all_follow(t_s, partners, orb_ppc):
            return RESONANCE_BPM, "guide"
        anchor = partners.get(self.anchor) if self.anchor else None
        if anchor is None or anchor.status != "ok":
            return None, "follow"
        return anchor.rate_bpm, "follow"

    def _all_follow(
        self, t_s: float, partners: Mapping[str, PartnerState], orb_ppc: Mapping[str, float | None]
    ) -> bool:
        couple = [k for k in partners if k in COUPLE]
        following = bool(couple) and all((orb_ppc.get(k) or 0.0) >= FOLLOW_PPC for k in couple)
        if not following:
            self._following_since = None
            return False
        if self._following_since is None:
            self._following_since = t_s
        return t_s - self._following_since >= FOLLOW_S

    def _start(self, t_s: float, partners: Mapping[str, PartnerState]) -> Pacer | None:
        couple = [p for k, p in partners.items() if k in COUPLE]
        rates = [p.rate_bpm for p in couple if p.rate_bpm is not None]
        waited = t_s - self.t_origin_s >= PACER_START_WAIT_S
        if not rates or (len(rates) < len(couple) and not waited):
            return None
        start = self.fixed_pace_bpm or sum(rates) / len(rates)
        log.info("pacer starts at %.1f/min", start)
        return Pacer(t_s, start)
