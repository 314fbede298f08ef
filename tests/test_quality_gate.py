"""The quality gate against a null: noise does not pass it, and never moves the orb."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import numpy as np
import pytest

from coach.breath import QUALITY_GATE, BreathEstimator
from coach.clock import VirtualClock
from coach.commands.demo import run_headless
from coach.tracker import PartnerTracker
from coach.types import AccChunk, HeartRate
from sims.person import Person, PersonSpec


def _white_noise_chest(seed: int, seconds: int) -> list[AccChunk]:
    """Gravity plus white sensor noise (5 mG), nothing else."""
    rng = np.random.default_rng(seed)
    return [AccChunk(float(k), "A", 200.0,
                     np.array([-1000.0, 0.0, 0.0]) + rng.normal(0, 5.0, (200, 3)))
            for k in range(seconds)]


def _passes(spec: PersonSpec | None, seed: int, seconds: int = 300) -> list[bool]:
    """Per analysis (1 s), whether the chest-motion window's confidence holds the gate."""
    est = BreathEstimator()
    out = []
    if spec is None:
        for k, chunk in enumerate(_white_noise_chest(seed, seconds)):
            est.push_acc(chunk)
            est.update(k + 1.0)
            if est.windows["acc"].state is not None:
                out.append(est.windows["acc"].confidence() >= QUALITY_GATE["acc"])
        return out
    person = Person(spec, np.random.default_rng(seed))
    for k in range(1, 4 * seconds + 1):
        sig = person.advance(k * 0.25)
        est.push_acc(sig.acc)
        est.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))
        if k % 4 == 0:
            est.update(person.t_s)
            if est.windows["acc"].state is not None:
                out.append(est.windows["acc"].confidence() >= QUALITY_GATE["acc"])
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_noise_passes_the_gate_in_at_most_5_percent_of_windows(seed: int) -> None:
    logging.disable(logging.WARNING)  # noise turns its "polarity" over and over
    try:
        white = _passes(None, seed)
        still = _passes(PersonSpec("A", arousal=0.4, depth=0.0), seed)  # no breathing
        breathing = _passes(PersonSpec("A", arousal=0.4, depth=0.5), seed)  # shallow
    finally:
        logging.disable(logging.NOTSET)
    assert len(white) > 250 and len(still) > 250
    assert np.mean(white) <= 0.05 and np.mean(still) <= 0.05
    # and the gate is not simply shut: shallow breathing passes once its confidence has
    # had a minute of windows to build
    assert np.mean(breathing[60:]) >= 0.9


def test_chest_motion_without_breathing_never_moves_the_orb() -> None:
    out = io.StringIO()
    clock = VirtualClock()
    with contextlib.redirect_stdout(out):
        clock.run(run_headless(clock, "breathless", 3, 240.0, emit_json=True))
    states = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(states) == 240
    assert all(s["pacer"] is None for s in states)  # no rate was trusted: no orb to move
    partners = [p for s in states for p in s["partners"].values()]
    assert not any(p["trusted"] for p in partners)


def test_chest_motion_and_heart_rate_disagreeing_for_30_s_lower_the_confidence(
        caplog) -> None:
    """Chest motion of someone breathing at 6/min beside the heart beats of someone
    breathing at 14/min, through a partner's tracker: once the two rates have been
    > 3/min apart for 30 s, the partner's state says so and its confidence drops."""
    chest = Person(PersonSpec("A", natural_bpm=6.0, compliance=0.0, breath_cv=0.0),
                   np.random.default_rng(3))
    heart = Person(PersonSpec("A", natural_bpm=14.0, compliance=0.0, breath_cv=0.0,
                              rsa_bpm=12.0), np.random.default_rng(4))
    tracker = PartnerTracker("A")
    est = tracker.breath
    apart_since = None  # first analysis at which the two windows' rates are > 3/min apart
    seen = []  # (t, disagree, confidence, best window confidence, trusted)
    with caplog.at_level(logging.INFO, logger="coach.breath"):
        for k in range(1, 4 * 240 + 1):
            t = k * 0.25
            tracker.push(chest.advance(t).acc)
            b = heart.advance(t)
            if len(b.rr_ms):
                tracker.push(HeartRate(t, "A", 60000.0 / float(b.rr_ms[-1]),
                                       tuple(b.rr_ms), tuple(b.beat_t_s)))
            if k % 4:
                continue
            p = tracker.state(t)
            acc, rr = (est.windows[n].rate_bpm(t) for n in ("acc", "rr"))
            if apart_since is None and acc is not None and rr is not None and abs(acc - rr) > 3:
                apart_since = t
            best = max(est.windows[n].confidence() for n in ("acc", "rr"))
            seen.append((t, p.sources_disagree, p.confidence, best, p.trusted))
    assert apart_since is not None
    flagged = [t for t, d, *_ in seen if d]
    assert flagged and flagged[0] >= apart_since + 30.0 - 1.0  # not before 30 s apart
    assert flagged[0] <= apart_since + 45.0
    late = [row for row in seen if row[0] > flagged[0]]
    assert late and all(d for _, d, *_ in late)  # the rates stay apart
    # lower than either source's own long-term quality, and not for the pacer to follow
    assert all(c is not None and c < best for _, _, c, best, _ in late)
    assert not any(trusted for *_, trusted in late)
    assert any("disagree" in r.getMessage() for r in caplog.records)
