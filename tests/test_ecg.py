"""The real-time R-peak detector on a real recording, against NeuroKit2."""

import os
import warnings
from pathlib import Path

import numpy as np
from scipy import io, signal

from coach.breath import BreathEstimator
from coach.ecg import RPeakDetector, ecg_peaks
from coach.types import EcgChunk

DATA = Path(os.environ.get("COACH_DATA", Path(__file__).parents[1] / ".." / "shared" / "data"))


def marsh_ecg(rid: str = "marsh_1000", seconds: float = 180.0) -> np.ndarray:
    x = io.loadmat(DATA / "recordings" / rid / "ECG.mat")["ECG"].ravel()[: int(seconds * 250)]
    return signal.resample_poly(x * 1e6, 13, 25)  # uV at 130 Hz, as a Polar H10


def matched(a: np.ndarray, b: np.ndarray, tol_s: float = 0.05) -> float:
    return float(np.mean(np.min(np.abs(a[:, None] - b[None, :]), axis=1) < tol_s))


def test_detector_agrees_with_neurokit2_on_real_ecg():
    import neurokit2 as nk

    x = marsh_ecg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nk.ecg_peaks(x, sampling_rate=130)[1]["ECG_R_Peaks"] / 130
    ours = ecg_peaks(x, 130.0).t_s
    ref = ref[ref > 2.5]
    ours = ours[ours > 2.6]
    assert matched(ours, ref) > 0.99 and matched(ref, ours) > 0.99


def test_chunked_detector_finds_the_same_beats():
    x = marsh_ecg(seconds=120)
    offline = ecg_peaks(x, 130.0).t_s
    det = RPeakDetector(130.0)
    live = np.concatenate([det.process(x[i : i + 13], i / 130).t_s for i in range(0, x.size, 13)])
    assert matched(live, offline, 0.01) > 0.99
    assert abs(live.size - offline.size) <= 2


def test_amplitude_is_positive_and_breathing_modulated():
    b = ecg_peaks(marsh_ecg(), 130.0)
    assert np.all(b.amp_uv > 0)
    cv = np.std(b.amp_uv) / np.mean(b.amp_uv)
    assert 0.005 < cv < 0.5


def test_frames_lost_do_not_shift_the_beats_after_them():
    x = marsh_ecg(seconds=90)
    offline = ecg_peaks(x, 130.0).t_s
    det = RPeakDetector(130.0)
    frames = [(x[i : i + 73], i / 130) for i in range(0, x.size, 73)]
    kept = [f for f in frames if not 30.0 <= f[1] < 40.0]  # 10 s of frames lost
    live = np.concatenate([det.process(*f).t_s for f in kept[:40]]
                          + [det.process_chunks(kept[40 + k : 44 + k]).t_s
                             for k in range(0, len(kept) - 40, 4)])
    after = live[live > 45.0]
    assert after.size > 30 and matched(after, offline, 0.01) > 0.99
    assert not np.any((live > 30.5) & (live < 40.0))  # nothing invented inside the gap


def test_offline_detector_keeps_the_beats_after_a_large_artifact():
    """marsh_5329 at ~547 s: one artifact of ~4x the R amplitude raised the beat level;
    fed the whole recording in one chunk the detector never searched back and lost the
    next 103 s of beats."""
    import neurokit2 as nk

    x = marsh_ecg("marsh_5329", seconds=700.0)[500 * 130 :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nk.ecg_peaks(x, sampling_rate=130)[1]["ECG_R_Peaks"] / 130
    ours = ecg_peaks(x, 130.0).t_s
    assert np.max(np.diff(ours)) < 2.0
    ref = ref[ref > 2.5]
    ours = ours[ours > 2.6]
    assert matched(ref, ours) > 0.97 and matched(ours, ref) > 0.97


def test_a_live_backlog_keeps_the_beats_after_a_large_artifact():
    """The same artifact inside the ECG that waits while another source serves: when ECG
    takes over, its backlog (up to 70 s) goes through the detector as it would have live,
    and the beats after the artifact are all there."""
    import neurokit2 as nk

    x = marsh_ecg("marsh_5329", seconds=610.0)[540 * 130 :]
    est = BreathEstimator()
    for i in range(0, x.size, 73):  # Polar H10 frames, never analysed meanwhile
        est.push_ecg(EcgChunk(540.0 + i / 130, "A", 130.0, x[i : i + 73]))
    est.estimate(610.0)  # the analysis takes the ECG that waited
    ours = est.windows["ecg"]._t[1]  # beat times of the R-amplitude wave
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = 540.0 + nk.ecg_peaks(x, sampling_rate=130)[1]["ECG_R_Peaks"] / 130
    # the fresh detector learns on the 2 s around the artifact (~547-550 s); from 555 s on
    # (one call over the backlog kept 4 beats in all) no beat is missing
    ours, ref = ours[ours > 555.0], ref[(ref > 555.5) & (ref < 609.0)]
    assert ours.size > 60 and np.max(np.diff(ours)) < 2.0
    assert matched(ref, ours) > 0.97
