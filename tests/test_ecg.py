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


def _simulated_ecg(edr_sign: float, seconds: float = 120.0) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """The simulator's ECG (130 Hz) of a person whose R waves grow (+1) or shrink (-1) on
    the inhale, and their lung volume every 0.25 s."""
    from sims.person import Person, PersonSpec

    person = Person(PersonSpec("A", natural_bpm=12.0, edr_sign=edr_sign),
                    np.random.default_rng(7))
    ecg, t, vol = [], [], []
    for k in range(1, int(seconds / 0.25) + 1):
        ecg.append(person.advance(k * 0.25).ecg.ecg_uv)
        t.append(person.t_s)
        vol.append(float(person.volume(person.phase)))
    return np.concatenate(ecg), np.array(t), np.array(vol)


def test_qrs_morphology_score_follows_the_simulated_breath_with_its_sign():
    """The first principal component of the QRS change tracks the lung volume, positive
    where the R waves grow on the inhale and negative where they shrink (the score is
    signed by the mean beat, not by the simulator)."""
    for sign in (1.0, -1.0):
        x, t, vol = _simulated_ecg(sign)
        b = ecg_peaks(x, 130.0)
        late = b.t_s > 20.0  # the running PCA has seen some breaths
        r = np.corrcoef(b.morph_uv[late], np.interp(b.t_s[late], t, vol))[0, 1]
        assert sign * r > 0.7, (sign, r)


def _ip_at(rid: str, t_s: np.ndarray) -> np.ndarray:
    ip = io.loadmat(DATA / "recordings" / rid / "IP.mat")["IP"].ravel()
    return np.interp(t_s, np.arange(ip.size) / 250.0, ip)


def test_qrs_morphology_is_nearer_the_impedance_wave_in_phase_than_r_amplitude():
    """marsh_1436 (first 600 s): both waves band-limited to 6-36/min at 4 Hz, as the breath
    window has them, signed by their correlation with the impedance wave; the median
    difference of their analytic phase from the impedance wave's is smaller for the
    QRS-morphology score than for the R-S amplitude (whole recording: 12 vs 28 deg)."""
    rid = "marsh_1436"
    b = ecg_peaks(marsh_ecg(rid, seconds=600.0), 130.0)
    grid = np.arange(20.0, 590.0, 0.25)
    sos = signal.butter(2, (0.1, 0.6), "bandpass", fs=4.0, output="sos")
    ip = signal.sosfiltfilt(sos, _ip_at(rid, grid))

    def phase_error_deg(v: np.ndarray) -> float:
        w = signal.sosfiltfilt(sos, np.interp(grid, b.t_s, v))
        w *= np.sign(np.corrcoef(w, ip)[0, 1])
        d = np.angle(signal.hilbert(w) * np.conj(signal.hilbert(ip)))
        return float(np.degrees(np.median(np.abs(d))))

    assert phase_error_deg(b.morph_uv) < phase_error_deg(b.amp_uv) - 5.0
