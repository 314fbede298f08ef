"""Who anchors the couple, and where the orb goes.

Rules (explained for therapists in docs/coregulation.md):

- **Anchor**: the calmer partner (higher calm score). A partner becomes anchor only
  after leading the other by at least :data:`ANCHOR_MARGIN` for :data:`ANCHOR_DWELL_S`
  seconds without a break, the first anchor too; when nobody leads by the margin the
  anchor stays, so the orb never flips back and forth. The therapist strap ``T`` is
  never chosen automatically. The therapist can fix the anchor (``T`` included).
- **Hand-over**: when the anchor's data have been unknown (strap lost, no contact) for
  :data:`HANDOVER_S` seconds, the other partner whose strap delivers becomes anchor
  (logged, counted, and named in the state); never ``T``.
- **Pacer**: starts at the mean breathing rate of the partners whose rate is known
  (waiting up to :data:`PACER_START_WAIT_S` for all of them); until an anchor exists it
  follows the couple's mean rate, then it moves toward the anchor's rate within the
  slew limit. It holds its rate while any partner's arousal alert is set, while a
  partner who was alerting is unobserved (alert unknown) until they are seen again or
  the therapist releases the hold, while the anchor's breathing is unknown or its strap
  is lost, and while paused. A pace set by the therapist replaces the anchor's rate as
  the target.
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
HANDOVER_S = 60.0  # s of the anchor's data unknown before another partner takes over


class AnchorChooser:
    """The calmer partner, with a margin and a dwell time."""

    def __init__(self, margin: float = ANCHOR_MARGIN, dwell_s: float = ANCHOR_DWELL_S) -> None:
        self.margin = margin
        self.dwell_s = dwell_s
        self.anchor: str | None = None
        self.changes = 0
        self.handovers = 0
        self._challenger_since: float | None = None
        self._unknown_since: float | None = None

    def update(
        self, t_s: float, calm: Mapping[str, float | None], settled: bool = True
    ) -> str | None:
        """Update from calm scores; the first choice waits until ``settled`` or all are known."""
        known = {k: v for k, v in calm.items() if v is not None and k in COUPLE}
        couple = [k for k in calm if k in COUPLE]
        if not known or (self.anchor is None and len(known) < len(couple) and not settled):
            return self.anchor
        best = max(sorted(known), key=lambda k: known[k])  # type: ignore[arg-type,return-value]
        if self.anchor is None and len(known) == 1:  # solo, or the other silent past the grace
            self._set(best)
            return self.anchor
        if self.anchor is None:  # the first anchor too must lead the other by the margin
            rest = [v for k, v in known.items() if k != best]
            lead = known[best] - max(rest) if rest else 0.0  # type: ignore[operator,type-var]
            mine = None
        else:
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

    def hand_over(self, t_s: float, partners: Mapping[str, PartnerState]) -> str | None:
        """After :data:`HANDOVER_S` of the anchor's data unknown, the other partner whose
        strap delivers takes over; returns who handed over to whom, or None."""
        me = partners.get(self.anchor) if self.anchor else None
        if me is None or me.status == "ok":
            self._unknown_since = None
            return None
        if self._unknown_since is None:
            self._unknown_since = t_s
        if t_s - self._unknown_since < HANDOVER_S:
            return None
        others = [k for k, p in sorted(partners.items())
                  if k in COUPLE and k != self.anchor and p.status == "ok"]
        if not others:
            return None
        before = self.anchor
        log.warning("anchor handed over: %s -> %s (%s's data unknown for %.0f s)",
                    before, others[0], before, t_s - self._unknown_since)
        self._set(others[0])
        self.handovers += 1
        self._unknown_since = None
        return f"{before} -> {others[0]}"


class CoRegulator:
    """Anchor and pacer from the partners' states and the therapist's commands."""

    def __init__(self, t_origin_s: float, solo: bool = False) -> None:
        self.t_origin_s = t_origin_s
        self.solo = solo
        self.chooser = AnchorChooser()
        self.pacer: Pacer | None = None
        self.fixed_anchor: str | None = None
        self.fixed_pace_bpm: float | None = None
        self.paused = False  # the orb rests at the end of an exhale
        self.held = False  # the orb keeps breathing at its present rate
        self.guide = solo
        self.ie_ratio: float | None = None
        self.holds = 0  # times the pacer began holding for an alert
        self.handover: str | None = None  # the latest automatic hand-over ("A -> B")
        self._alerting = False
        self._unseen_alerting: set[str] = set()  # alerting when last seen, unobserved since
        self._released: set[str] = set()  # holds the therapist released
        self._alert_labels: set[str] = set()  # partners whose alert holds the pacer
        self._following_since: float | None = None

    @property
    def anchor(self) -> str | None:
        return self.fixed_anchor or self.chooser.anchor

    def command(self, cmd: Command) -> None:
        if cmd.kind == "pause":
            self.paused = True
        elif cmd.kind == "resume":
            self.paused = self.held = False
        elif cmd.kind == "hold":
            self.held = bool(cmd.value)
        elif cmd.kind == "anchor":
            self.fixed_anchor = None if cmd.value in (None, "auto") else str(cmd.value)
        elif cmd.kind == "pace":
            self.fixed_pace_bpm = None if cmd.value in (None, "auto") else float(cmd.value)
        elif cmd.kind == "ratio":
            self.ie_ratio = float(cmd.value)
        elif cmd.kind == "guide":
            self.guide = bool(cmd.value)
        elif cmd.kind == "release-hold":
            self._released |= self._alert_labels
            self._unseen_alerting.clear()
            log.info("hold released by the therapist (%s)", ", ".join(sorted(self._released)))

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
        if self.fixed_anchor is None:
            self.handover = self.chooser.hand_over(t_s, partners) or self.handover
        if self.pacer is None:
            self.pacer = self._start(t_s, partners)
            return None if self.pacer is None else self.pacer.state
        target, mode = self._target(t_s, partners, orb_ppc or {})
        alerting = self._hold_for_alert(partners)
        if alerting and not self._alerting:
            self.holds += 1
            log.info("pacer holds: arousal alert")
        self._alerting = alerting
        holding = self.paused or self.held or alerting or target is None
        if self.paused:
            mode = "paused"
        elif alerting:
            mode = "alert"
        elif self.held:
            mode = "held"
        return self.pacer.update(t_s, target, holding=holding, mode=mode, ie_ratio=self.ie_ratio,
                                 target_shown=self.fixed_pace_bpm)

    def _hold_for_alert(self, partners: Mapping[str, PartnerState]) -> bool:
        """Whether an alert holds the pacer: a partner alerting now, or one who was alerting
        when their strap went silent (alert unknown) and is not seen since; the therapist
        can release either until that partner's alert is known to be off."""
        couple = {k: p for k, p in partners.items() if k in COUPLE}
        for k, p in couple.items():
            if p.alert is None and k in self._alert_labels:
                self._unseen_alerting.add(k)
            elif p.alert is not None:
                self._unseen_alerting.discard(k)
                if not p.alert:
                    self._released.discard(k)
        self._alert_labels = {k for k, p in couple.items() if p.alert} | (
            self._unseen_alerting & set(couple))
        return bool(self._alert_labels - self._released)

    def _target(
        self, t_s: float, partners: Mapping[str, PartnerState], orb_ppc: Mapping[str, float | None]
    ) -> tuple[float | None, str]:
        if self.fixed_pace_bpm is not None:
            return self.fixed_pace_bpm, "manual"
        if self.guide and self._all_follow(t_s, partners, orb_ppc):
            return RESONANCE_BPM, "guide"
        if self.anchor is None:  # nobody has led yet: the couple's mean (trusted rates)
            rates = [p.rate_bpm for k, p in partners.items() if k in COUPLE
                     and p.status == "ok" and p.trusted and p.rate_bpm is not None]
            return (sum(rates) / len(rates) if rates else None), "follow"
        anchor = partners.get(self.anchor)
        if anchor is None or anchor.status != "ok" or not anchor.trusted:
            return None, "follow"  # steer only toward a rate whose confidence has held
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
        rates = [p.rate_bpm for p in couple if p.rate_bpm is not None and p.trusted]
        waited = t_s - self.t_origin_s >= PACER_START_WAIT_S
        if not rates or (len(rates) < len(couple) and not waited):
            return None
        start = self.fixed_pace_bpm or sum(rates) / len(rates)
        log.info("pacer starts at %.1f/min", start)
        return Pacer(t_s, start)
