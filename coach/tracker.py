"""Everything the session knows about one person, from their strap's events."""

from __future__ import annotations

import logging
import math
from collections import deque

from coach.alert import ALERT_HR_WINDOW_S, ArousalAlert
from coach.breath import BreathEstimator
from coach.calm import CalmScore, Features
from coach.coherence import COHERENCE_EVERY_S, COHERENCE_WINDOW_S, hrv_coherence
from coach.config import STRAP_SILENT_S
from coach.heart import HeartTracker
from coach.talk import TalkDetector
from coach.types import (
    AccChunk,
    EcgChunk,
    HeartRate,
    PartnerState,
    StrapCondition,
    StrapEvent,
    StrapStatus,
)

log = logging.getLogger(__name__)


class PartnerTracker:
    """Breathing, heart, calm and strap status of one partner."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.breath = BreathEstimator()  # fused ACC / ECG-derived / RR breathing
        self.heart = HeartTracker()
        self.calm = CalmScore()
        self.alert = ArousalAlert()
        self.talk = TalkDetector()
        self.talking: bool | None = None
        self.coherence: float | None = None
        self.rsa_bpm: float | None = None
        self._onsets: deque[float] = deque(maxlen=64)  # inhale onsets seen in the phase
        self._last_phase: float | None = None
        self._slow_due_s: float | None = None  # next time for the once-in-a-while figures
        self._second_due_s: float | None = None  # next time for the once-a-second figures
        self.rmssd: float | None = None
        self.condition: StrapCondition = "connecting"
        self._reported: StrapCondition | None = None  # the driver's last word on the link
        self.reason = ""  # why the strap is not ok (the driver's note, or the watchdog's)
        self.battery_pct: int | None = None
        self.last_data_s: float | None = None
        self.events = 0
        self.losses = 0  # times the strap went from ok to lost
        self.contact_losses = 0  # times it lost skin contact

    def push(self, event: StrapEvent) -> None:
        """Take one event from this partner's strap."""
        self.events += 1
        if isinstance(event, StrapStatus):
            condition = event.condition
            if condition == "connecting" and self.condition == "lost":
                condition = "lost"  # reconnecting to a strap we had: it is still lost
            self._reported = event.condition
            self.reason = "" if event.condition == "ok" else event.note
            if condition == "ok":
                self.last_data_s = event.t_s  # the silence watchdog starts afresh
            self._set_condition(condition)
            if event.battery_pct is not None:
                self.battery_pct = event.battery_pct
            return
        self.last_data_s = max(self.last_data_s or event.t_s, _end_time(event))
        if self.condition in ("connecting", "lost") and self._reported in (None, "ok"):
            self._set_condition("ok")  # data flows again (frames still in flight do not count)
            self.reason = ""
        if isinstance(event, AccChunk):
            self.breath.push_acc(event)
            self.talk.push_acc(event)
        elif isinstance(event, HeartRate):
            corrected = self.breath.push_beats(event.beat_t_s, event.rr_ms)
            self.heart.push(event, corrected)
            if event.contact is False:
                self._set_condition("no-contact")
            elif event.contact and self.condition == "no-contact":
                self._set_condition("ok")
        elif isinstance(event, EcgChunk):
            self.breath.push_ecg(event)

    def _set_condition(self, condition: StrapCondition) -> None:
        if condition == self.condition:
            return
        if condition == "lost":
            self.losses += 1
        elif condition == "no-contact":
            self.contact_losses += 1
        log.info("strap %s: %s -> %s", self.label, self.condition, condition)
        self.condition = condition

    def state(self, t_s: float) -> PartnerState:
        """The partner's state at ``t_s`` (data silent for too long -> lost, values unknown)."""
        if (
            self.condition in ("ok", "no-contact")
            and self.last_data_s is not None
            and t_s - self.last_data_s > STRAP_SILENT_S
        ):
            self._set_condition("lost")
            self.reason = f"no data for {t_s - self.last_data_s:.0f} s"
        if self.condition != "ok":  # nothing known, the alert included
            self._last_phase = None
            return PartnerState(self.label, self.condition, battery_pct=self.battery_pct,
                                status_reason=self.reason, alert=None)
        est = self.breath.estimate(t_s)
        self._note_onset(t_s, est.phase)
        hr = self.heart.hr_bpm()
        if self._second_due_s is None or t_s >= self._second_due_s:
            self._second_figures(t_s, hr, est.rate_bpm, est.regularity)
        rmssd, calm, alert = self.rmssd, self.calm.value, self.alert.active
        return PartnerState(
            self.label,
            self.condition,
            rate_bpm=est.rate_bpm,
            phase=est.phase,
            breath=est.level,
            hr_bpm=hr,
            rmssd_ms=rmssd,
            calm=calm,
            source=est.source if est.rate_bpm is not None else None,
            quality=est.quality,
            battery_pct=self.battery_pct,
            alert=alert,
            coherence=self.coherence,
            rsa_bpm=self.rsa_bpm,
            regularity=est.regularity,
            confidence=est.confidence,
            trusted=est.trusted and est.rate_bpm is not None,
            sources_disagree=est.disagree,
            talking=self.talking,
        )

    def _note_onset(self, t_s: float, phase: float | None) -> None:
        """An inhale onset where the breath phase wraps from late exhale to early inhale."""
        if phase is not None and self._last_phase is not None and (
                self._last_phase > 1.5 * math.pi and phase < 0.5 * math.pi):
            self._onsets.append(t_s)
        self._last_phase = phase

    def _second_figures(
        self, t_s: float, hr: float | None, rate: float | None, regularity: float | None
    ) -> None:
        """RMSSD, calm and alert, once a second (they change over seconds, not frames)."""
        self._second_due_s = t_s + 1.0
        self.rmssd = self.heart.rmssd_ms(t_s)
        self._slow_figures(t_s)
        self.talking = self.talk.talking(t_s, regularity)
        if not self.talking:  # speech changes breathing and heart: calm holds meanwhile
            self.calm.update(t_s, Features(hr, self.rmssd, rate, regularity))
        # at least one whole breath, so a slow breath's RSA swing is averaged out
        window = max(ALERT_HR_WINDOW_S, 60.0 / rate) if rate else ALERT_HR_WINDOW_S
        self.alert.update(t_s, self.heart.hr_recent_bpm(t_s, window), rate)

    def _slow_figures(self, t_s: float) -> None:
        """RSA amplitude and coherence, every COHERENCE_EVERY_S seconds."""
        if self._slow_due_s is not None and t_s < self._slow_due_s:
            return
        self._slow_due_s = t_s + COHERENCE_EVERY_S
        self.rsa_bpm = self.heart.rsa_bpm(t_s, self._onsets)
        hr = self.heart.hr_series(t_s, COHERENCE_WINDOW_S)
        self.coherence = None if hr is None else hrv_coherence(hr)


def _end_time(event: StrapEvent) -> float:
    if isinstance(event, AccChunk | EcgChunk):
        return event.end_s
    return event.t_s
