"""Synchrony between the partners, judged against chance, and each partner's locking to the orb.

Sampled once a second, over windows of :data:`SYNC_WINDOW_S` seconds:

- ``breath_ppc``: pairwise phase consistency of the partners' breathing (Vinck et al.
  2010): the mean cosine of the phase-difference change over all pairs of samples,
  ``(|sum exp(i d)|^2 - n) / (n (n - 1))``. It is the bias-free square of the phase
  locking value: unrelated series score 0 on average whatever the window length (the
  raw PLV of 60 unrelated samples is about 0.11 on average, 0.2-0.3 often), 1 a constant
  phase relation.
- ``breath_ppc_chance``: the chance level, from *pseudo-couples*: one partner's breathing
  now against the other's from a non-overlapping stretch of the same session (Flory et
  al. 2023; Moulder et al. 2018; Coutinho et al. 2021 for couples). A pseudo-couple keeps
  each partner's own rhythm but breaks the pairing. Four sets, each one partner held at
  the window and the other taken from elsewhere (A now with B's stretches, B now with
  A's):

  * **relative to the orb, matched on the orb's cycle**: each partner's phase minus the
    orb's, and the other partner's stretch read at the seconds when the orb stood at
    the same point of its cycle as in each second of the window, whole cycles away. Two
    people who each follow the orb keep their relation to it in the pseudo-couple, and
    what rides on the orb's cycle in both (how far each lags it at that point of the
    breath, the breath estimate's bias there: docs/coregulation.md) is the same as in
    the real pair, so the orb's part does not count as the couple's.
  * **as they are, shifted in time**: so two people who merely breathe at the same rate
    while the orb's pace moves are not credited either.

  The window beats chance only if it beats every set at the 95th percentile
  (:func:`chance_level`): an intersection-union test (Berger 1982), at most 5 % under
  the null. Each set alone is a valid permutation test, since the real window is
  exchangeable with the stretches of the partner that is replaced; pooling them (as
  before) was not: a minute in which one partner's phase happens to be cleaner than
  usual lifts half of the pooled pseudo-couples with it, and the real pair then beat
  the pooled 95th percentile more often than 5 % of the time.
- ``orb_ppc``: each partner's breathing against the orb (same figure). The orb follows
  the anchor, so the anchor's value says how well the orb follows them, not the
  reverse (``orb_follows`` names that partner; the session fills it in).
- ``hr_xcorr``: the highest Pearson correlation of the partners' heart rates over lags
  of up to +-:data:`MAX_LAG_S` seconds (Boker et al. 2002); ``hr_xcorr_chance``: the 95th
  percentile of the same over the pseudo-couples.
- The whole session (``session``): the share of **independent** (non-overlapping) windows
  whose breath synchrony stood beyond chance, in percent, with its 95 % Wilson score
  interval and the number of windows judged. Windows in which a partner talked are
  counted apart (``talk_*``) and left out of the main share.

References
----------
Vinck M, van Wingerden M, Womelsdorf T, Fries P, Pennartz CMA. The pairwise phase
consistency: a bias-free measure of rhythmic neuronal synchronization. NeuroImage
51(1):112-122, 2010.
Lachaux JP, Rodriguez E, Martinerie J, Varela FJ. Measuring phase synchrony in brain
signals. Hum Brain Mapp 8:194-208, 1999 (phase locking value).
Flory S, Guglielmini S, Scholkmann F, Marcar VL, Wolf M. How our hearts beat together: a
study on physiological synchronization based on a self-paced joint motor task. Sci Rep
13:11987, 2023 (pseudo-couple surrogates).
Coutinho J, Pereira A, Oliveira-Silva P, Meier D, Lourenço V, Tschacher W.
When our hearts beat together: cardiac synchrony as an entry point to understand dyadic
co-regulation in couples. Psychophysiology 58(3):e13739, 2021.
Berger RL. Multiparameter hypothesis testing and acceptance sampling. Technometrics
24(4):295-300, 1982 (intersection-union tests).
Boker SM, Xu M, Rotondo JL, King K. Windowed cross-correlation and peak picking for the
analysis of variability in the association between behavioral time series. Psychol
Methods 7(3):338-355, 2002.
Moulder RG, Boker SM, Ramseyer F, Tschacher W. Determining synchrony between behavioral
time series: an application of surrogate data generation for establishing falsifiable
null-hypotheses. Psychol Methods 23(4):757-773, 2018.
Wilson EB. Probable inference, the law of succession, and statistical inference. J Am
Stat Assoc 22:209-212, 1927.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Final

import numpy as np

from coach.types import TWO_PI

SYNC_WINDOW_S: Final = 60  # seconds (samples at 1 Hz)
MAX_LAG_S: Final = 5  # seconds
CHANCE_PERCENTILE: Final = 95.0  # a window is beyond chance above this percentile
MIN_SURROGATES: Final = 19  # pseudo-couples needed in each set before a window is judged
MAX_SURROGATES: Final = 60  # at most this many in each set (spread over the session)
SURROGATE_STEP_S: Final = 5  # seconds between the starts of pseudo-partner stretches
HISTORY_S: Final = 3600  # seconds of the session kept for pseudo-couples
TALK_SHARE: Final = 0.1  # a window with more talk than this is a talking window
WILSON_Z: Final = 1.959964  # 95 % interval

# history columns
_A, _B, _ORB, _HA, _HB, _TALK = range(6)


def plv(phase_diff: np.ndarray) -> float:
    """Phase locking value of a series of phase differences (radians); biased upward."""
    return float(abs(np.mean(np.exp(1j * phase_diff))))


def ppcs(phase_diffs: np.ndarray) -> np.ndarray:
    """Pairwise phase consistency of each row of phase differences (Vinck et al. 2010)."""
    n = phase_diffs.shape[-1]
    s = np.abs(np.sum(np.exp(1j * phase_diffs), axis=-1)) ** 2
    return (s - n) / (n * (n - 1))


def ppc(phase_diff: np.ndarray) -> float:
    """:func:`ppcs` of one series."""
    return float(ppcs(np.asarray(phase_diff, dtype=float)[None, :])[0])


def wilson_interval(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (0..1); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share_summary(beyond: int, windows: int) -> dict[str, Any]:
    """Percent of windows beyond chance with its Wilson interval (None without windows)."""
    if windows <= 0:
        return {"synchrony_beyond_chance_percent": None, "ci95_percent": None,
                "windows": 0, "windows_beyond_chance": 0}
    lo, hi = wilson_interval(beyond, windows)
    return {
        "synchrony_beyond_chance_percent": round(100.0 * beyond / windows, 2),
        "ci95_percent": [round(100.0 * lo, 2), round(100.0 * hi, 2)],
        "windows": windows,
        "windows_beyond_chance": beyond,
    }


def lagged_xcorrs(x: np.ndarray, ys: np.ndarray, max_lag: int) -> np.ndarray:
    """Highest correlation of ``x`` with each row of ``ys`` shifted by up to ``max_lag``
    samples (NaN where undefined: a flat series, or too short).

    Both series are standardised over the whole window, and the correlation at each lag
    is the mean product over the overlapping samples (the usual windowed
    cross-correlation estimate; Boker et al. 2002).
    """
    n = len(x)
    out = np.full(len(ys), math.nan)
    sx, sy = float(np.std(x)), ys.std(axis=1)
    if n < 2 * max_lag + 10 or sx == 0:
        return out
    xz = (x - x.mean()) / sx
    yz = (ys - ys.mean(axis=1, keepdims=True)) / np.where(sy == 0, 1.0, sy)[:, None]
    shift, overlap = _lags(n, max_lag)
    best = np.max((yz @ np.append(xz, 0.0)[shift]) / overlap, axis=1)
    return np.where(sy == 0, math.nan, best)


@functools.lru_cache(maxsize=4)
def _lags(n: int, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, lags) of x shifted by each lag (n = a zero outside), and overlaps."""
    lags = np.arange(-max_lag, max_lag + 1)
    i = np.arange(n)[:, None] + lags[None, :]
    return np.where((i >= 0) & (i < n), i, n), n - np.abs(lags)


def pseudo_starts(n: int, w: int, cur: int, valid: np.ndarray, step: int) -> np.ndarray:
    """Starts of complete stretches of ``w`` samples not overlapping ``[cur, cur + w)``.

    ``valid[s]`` says the stretch starting at ``s`` has no gap. At most
    :data:`MAX_SURROGATES`, spread evenly over the candidates.
    """
    starts = np.arange(0, n - w + 1, step)
    return _spread(starts[(np.abs(starts - cur) >= w) & valid[starts]])


def _spread(x: np.ndarray) -> np.ndarray:
    """At most :data:`MAX_SURROGATES` of the rows of ``x``, evenly spread."""
    if len(x) <= MAX_SURROGATES:
        return x
    return x[np.linspace(0, len(x) - 1, MAX_SURROGATES).round().astype(int)]


def orb_matched_rows(h: np.ndarray, cur: int, w: int, valid: np.ndarray, step: int
                     ) -> np.ndarray | None:
    """Rows (one line per pseudo-partner stretch, ``w`` columns) at which the orb stood at
    the same point of its cycle as at each second of the window ``h[cur:cur + w]``, a
    whole number of cycles away (the nearest second; at 12/min the orb moves 72 degrees
    a second, so within 36 degrees).

    A stretch is used when the orb moved through all of it, it does not overlap the
    window, and the ``valid`` stretches from its first and to its last row cover it
    (complete, of the window's kind). One per ``step`` seconds at most, and at most
    :data:`MAX_SURROGATES`. None when the orb does not move through the window (no orb,
    or paused): then there is no cycle to match.
    """
    n = len(h)
    turn = np.mod(np.diff(h[:, _ORB]), TWO_PI)  # the orb only ever moves forward
    moving = np.nan_to_num(turn) > 1e-6  # from each row to the next
    if not moving[cur : cur + w - 1].all():
        return None
    u = np.concatenate([[0.0], np.cumsum(np.where(moving, turn, 0.0))])  # unwrapped
    uw = u[cur : cur + w]
    ks = np.arange(math.ceil((u[0] - uw[0]) / TWO_PI), math.floor((u[-1] - uw[-1]) / TWO_PI) + 1)
    if ks.size == 0:
        return np.zeros((0, w), dtype=int)
    # a stretch's first and last rows decide whether it is used: the rows in between are
    # read (interpolated) only for the few dozen kept, not for every cycle of the session
    at = np.arange(n)
    lo = np.rint(np.interp(uw[0] + TWO_PI * ks, u, at)).astype(int)
    hi = np.rint(np.interp(uw[-1] + TWO_PI * ks, u, at)).astype(int)
    still = np.concatenate([[0], np.cumsum(~moving)])  # rows from which the orb did not move
    ok = ((hi < cur) | (lo >= cur + w)) & (hi - lo < 2 * w) & (hi >= w - 1)
    ok &= (still[hi] - still[lo] == 0) & valid[lo] & valid[np.maximum(hi - w + 1, 0)]
    _, first = np.unique(lo[ok] // step, return_index=True)
    ks = _spread(ks[ok][first])
    return np.rint(np.interp(uw[None, :] + TWO_PI * ks[:, None], u, at)).astype(int)


def window_figures(h: np.ndarray, cur: int, w: int = SYNC_WINDOW_S,
                   valid: np.ndarray | None = None, step: int = SURROGATE_STEP_S
                   ) -> dict[str, Any]:
    """Breath and heart-rate synchrony of the window ``h[cur:cur + w]`` against chance.

    ``h`` holds one row a second: phase A, phase B, orb phase (0 without an orb), heart
    rates A and B, talking (0/1); its pseudo-couples come from any other stretch of ``h``
    (live: the past only; offline: the whole session).
    """
    n = len(h)
    if valid is None:
        valid = _valid_starts(h, w)
    win = h[cur : cur + w]
    a, b = win[:, _A], win[:, _B]
    rel_a, rel_b = a - win[:, _ORB], b - win[:, _ORB]
    real = ppc(a - b)  # = ppc(rel_a - rel_b): the orb cancels in the real pair
    starts = pseudo_starts(n, w, cur, valid, step)
    idx = starts[:, None] + np.arange(w)[None, :]
    matched = orb_matched_rows(h, cur, w, valid, step)
    if matched is None:  # no orb cycle to match: shifted in time, as the other sets
        matched = idx
    sets = (  # one partner now, the other from elsewhere; see the module's docstring
        ppcs(rel_a[None, :] - (h[matched, _B] - h[matched, _ORB])),
        ppcs((h[matched, _A] - h[matched, _ORB]) - rel_b[None, :]),
        ppcs(a[None, :] - h[idx, _B]),
        ppcs(h[idx, _A] - b[None, :]),
    )
    out: dict[str, Any] = {"breath_ppc": real, "breath_ppc_chance": None,
                           "beyond_chance": None, "pseudo_couples": sum(map(len, sets))}
    ha, hb = win[:, _HA], win[:, _HB]
    r = lagged_xcorrs(ha - ha.mean(), np.vstack([hb[None, :], h[idx, _HB]]), MAX_LAG_S)
    out["hr_xcorr"] = None if math.isnan(r[0]) else float(r[0])
    if min(map(len, sets)) < MIN_SURROGATES:
        return out
    chance = max(chance_level(s) for s in sets)  # the window must beat every set
    r_other = lagged_xcorrs(hb - hb.mean(), h[idx, _HA], MAX_LAG_S)
    known = np.concatenate([r[1:], r_other])
    known = known[~np.isnan(known)]
    out |= {
        "breath_ppc_chance": chance,
        "beyond_chance": bool(real > chance),
        "hr_xcorr_chance": chance_level(known) if known.size >= MIN_SURROGATES else None,
    }
    return out


def offline_counts(h: np.ndarray, w: int = SYNC_WINDOW_S,
                   others: list[np.ndarray] | None = None) -> dict[str, int]:
    """Judge consecutive non-overlapping windows of a whole session (one row a second, as
    :func:`window_figures`), with pseudo-couples from anywhere else in the session and,
    when ``others`` (other sessions' rows) are given, from those sessions too.

    Returns counts: ``windows`` and ``beyond`` without talk, ``talk_windows`` and
    ``talk_beyond`` with it.
    """
    pool = [h, *(others or [])]
    joined = np.vstack(pool) if len(pool) > 1 else h
    # rows of other sessions never pair across a session boundary: NaN rows between them
    if len(pool) > 1:
        gap = np.full((w, h.shape[1]), math.nan)
        joined = np.vstack([x for part in pool for x in (part, gap)])
    valid = _valid_starts(joined, w)
    counts = {"windows": 0, "beyond": 0, "talk_windows": 0, "talk_beyond": 0}
    cur = 0
    while cur + w <= len(h):
        if not valid[cur]:
            cur += 1
            continue
        talking = bool(np.mean(h[cur : cur + w, _TALK]) > TALK_SHARE)
        fig = window_figures(joined, cur, w, valid=valid & same_kind(joined, w, talking))
        if fig["beyond_chance"] is not None:
            talk = "talk_" if talking else ""
            counts[f"{talk}windows"] += 1
            counts[f"{talk}beyond"] += int(fig["beyond_chance"])
        cur += w
    return counts


def chance_level(surrogates: np.ndarray, percentile: float = CHANCE_PERCENTILE) -> float:
    """The value a real figure must exceed to stand beyond chance at ``percentile``: the
    surrogate above which fewer than ``1 - percentile`` of all K + 1 values lie, i.e. a
    permutation p-value ``(1 + #{surrogates >= real}) / (K + 1) <= 1 - percentile``
    (exact for exchangeable surrogates whatever K; the plain interpolated percentile of
    19 surrogates would let about 9 % of chance windows through)."""
    k = len(surrogates)
    m = math.floor((1.0 - percentile / 100.0) * (k + 1) + 1e-9) - 1  # values allowed above
    if m < 0:
        raise ValueError(f"{k} surrogates cannot judge at the {percentile:g}th percentile")
    return float(np.sort(surrogates)[k - 1 - m])


def same_kind(h: np.ndarray, w: int, talk: bool) -> np.ndarray:
    """Starts of stretches of the kind asked for: talk (more than :data:`TALK_SHARE` of
    the seconds) or quiet breathing. Quiet breathing is judged against quiet stretches
    only, talk against talk."""
    c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(h[:, _TALK]))])
    quiet = np.zeros(len(h), dtype=bool)
    if len(h) >= w:
        quiet[: len(h) - w + 1] = (c[w:] - c[: len(h) - w + 1]) <= TALK_SHARE * w
    return ~quiet if talk else quiet


def _valid_starts(h: np.ndarray, w: int) -> np.ndarray:
    """For each start, whether the ``w`` rows from it are complete (no NaN)."""
    bad = np.isnan(h[:, :_TALK]).any(axis=1).astype(int)
    c = np.concatenate([[0], np.cumsum(bad)])
    n = len(h)
    out = np.zeros(n, dtype=bool)
    if n >= w:
        out[: n - w + 1] = (c[w:] - c[: n - w + 1]) == 0
    return out


class Synchrony:
    """Live and whole-session synchrony of partners A and B, and of each with the orb."""

    def __init__(self, exclude_talk: bool = True) -> None:
        self.exclude_talk = exclude_talk
        self._h = np.full((HISTORY_S, 6), math.nan)
        self._n = 0
        self._offset = 0  # rows dropped from the front of the history
        self._orb_rows: dict[str, list[float]] = {}
        self._judged_end = -SYNC_WINDOW_S  # absolute row where the last judged window ended
        self._counts = {"windows": 0, "beyond": 0, "talk_windows": 0, "talk_beyond": 0}
        self._sums: dict[str, float] = {}
        self._last_window: dict[str, Any] = {}
        self.latest: dict[str, Any] = {}

    def add(
        self,
        phases: dict[str, float | None],
        hrs: dict[str, float | None],
        orb_phase: float | None,
        talking: dict[str, bool | None] | None = None,
    ) -> dict[str, Any]:
        """Add one second of phases, heart rates and talk flags by label; returns the figures.

        Figures are None until a window of :data:`SYNC_WINDOW_S` seconds without gaps exists.
        """
        for label, phase in phases.items():
            rows = self._orb_rows.setdefault(label, [])
            if phase is None or orb_phase is None:
                rows.clear()  # a gap: start the window again
            else:
                rows.append(phase - orb_phase)
                del rows[:-SYNC_WINDOW_S]
        talk = any(bool(v) for v in (talking or {}).values())
        values = (phases.get("A"), phases.get("B"), orb_phase or 0.0, hrs.get("A"), hrs.get("B"))
        row = [math.nan if v is None else float(v) for v in values] + [float(talk)]
        self._append(row)
        self.latest = self._compute()
        return self.latest

    def _append(self, row: list[float]) -> None:
        if self._n == len(self._h):  # drop the oldest half
            half = len(self._h) // 2
            self._h[:half] = self._h[half:]
            self._h[half:] = math.nan
            self._n -= half
            self._offset += half
        self._h[self._n] = row
        self._n += 1

    def _compute(self) -> dict[str, Any]:
        w = SYNC_WINDOW_S
        out: dict[str, Any] = dict.fromkeys(
            ("breath_ppc", "breath_ppc_chance", "beyond_chance", "hr_xcorr", "hr_xcorr_chance"))
        out["orb_ppc"] = {k: ppc(np.array(v)) if len(v) == w else None
                          for k, v in self._orb_rows.items()}
        h = self._h[: self._n]
        if self._n < w or np.isnan(h[-w:, :_TALK]).any():
            return out | self._session_out()
        valid = _valid_starts(h, w)
        cur = self._n - w
        talk_share = float(np.mean(h[cur:, _TALK]))
        out |= window_figures(h, cur, valid=self._usable(valid, h, talk_share > TALK_SHARE))
        out["talking_share"] = round(talk_share, 3)
        end = self._offset + self._n
        if out["beyond_chance"] is not None and end - self._judged_end >= w:
            self._judge(out, talk_share > TALK_SHARE)
            self._judged_end = end
        return out | self._session_out()

    def _usable(self, valid: np.ndarray, h: np.ndarray, talk: bool) -> np.ndarray:
        """Pseudo-partner stretches: complete, and (talk excluded) of the window's kind."""
        return valid & same_kind(h, SYNC_WINDOW_S, talk) if self.exclude_talk else valid

    def _judge(self, out: dict[str, Any], talking: bool) -> None:
        beyond = bool(out["beyond_chance"])
        if talking and self.exclude_talk:
            self._counts["talk_windows"] += 1
            self._counts["talk_beyond"] += beyond
            return
        self._counts["windows"] += 1
        self._counts["beyond"] += beyond
        for key in ("breath_ppc", "breath_ppc_chance", "hr_xcorr", "hr_xcorr_chance"):
            if out.get(key) is not None:
                self._sums[key] = self._sums.get(key, 0.0) + out[key]

    def _session_out(self) -> dict[str, Any]:
        return {"session": self.session_summary()}

    def session_summary(self) -> dict[str, Any]:
        """Share of independent windows beyond chance (Wilson 95 % interval), and means."""
        c = self._counts
        out = share_summary(c["beyond"], c["windows"])
        out["ci_method"] = "Wilson score, 95 %"
        out["talk_excluded"] = self.exclude_talk
        talk = share_summary(c["talk_beyond"], c["talk_windows"])
        out["talk_windows"] = c["talk_windows"]
        out["talk_synchrony_beyond_chance_percent"] = talk["synchrony_beyond_chance_percent"]
        if c["windows"]:
            out |= {f"{k}_mean": round(v / c["windows"], 4) for k, v in self._sums.items()}
        return out


def round_figures(fig: dict[str, Any], digits: int = 4) -> dict[str, Any]:
    """JSON-ready copy: floats rounded, NaN as None."""
    def fix(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, float):
            return round(v, digits) if math.isfinite(v) else None
        return v
    return fix(fig)
