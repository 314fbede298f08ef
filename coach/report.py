"""A session report: one self-contained HTML page (plots inline as base64 PNG).

Breathing rate, heart rate, calm and synchrony are drawn on one time axis (minutes
from the session start) with the pacer and the therapist's markers; a summary table
gives the time to convergence, the time synchronous beyond chance (share of
independent one-minute windows, with its Wilson interval; see coach.synchrony), apart
for talk and quiet breathing, and coherence when the session states carry it.

The session's own synchrony figures are used when its states carry them; for older
recordings breath synchrony is judged here from the recorded breath phases, the same
way offline (coach.synchrony.offline_counts, pseudo-couples from the whole session).

References
----------
Lachaux, J.-P., Rodriguez, E., Martinerie, J., Varela, F. J. (1999). Measuring phase
synchrony in brain signals. Human Brain Mapping, 8(4), 194-208.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from coach.export import flatten_state
from coach.recording import RecordingReader
from coach.synchrony import offline_counts, wilson_interval

PLV_WINDOW_S = 60.0  # s, sliding window of the breath phase locking value
BASELINE_S = 120.0  # s from the start that count as the couple's baseline
CONVERGED_BPM = 1.0  # breaths/min: a partner within this of the orb follows it
CONVERGED_HOLD_S = 60.0  # s every partner must stay within it to count as converged

Progress = Callable[[str], None]


@dataclass
class Series:
    """State fields as arrays over time (minutes from the start), NaN where unknown."""

    t_min: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    markers: list[tuple[float, str]] = field(default_factory=list)

    def get(self, name: str) -> np.ndarray:
        return self.columns.get(name, np.full(len(self.t_min), np.nan))


def load_series(reader: RecordingReader) -> Series:
    """The recording's states as numeric columns, plus its markers."""
    origin = reader.t_origin_s
    rows = [flatten_state(s, origin) for s in reader.states()]
    t = np.array([r["t_s"] for r in rows], dtype=float) / 60.0
    names = dict.fromkeys(k for r in rows for k in r if k != "t_s")
    cols: dict[str, np.ndarray] = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if all(v is None or isinstance(v, int | float) for v in values):
            cols[name] = np.array([np.nan if v is None else float(v) for v in values])
    markers = [((e.t_s - origin) / 60.0, e.item.kind) for e in reader.entries(("marker",))]
    return Series(t, cols, reader.labels, markers)


def breath_plv(series: Series, a: str, b: str, window_s: float = PLV_WINDOW_S) -> np.ndarray:
    """Sliding phase locking value of two partners' breath phases, in [0, 1]."""
    dphi = series.get(f"{a}_phase") - series.get(f"{b}_phase")
    z = np.exp(1j * np.nan_to_num(dphi))
    valid = np.isfinite(dphi).astype(float)
    if len(z) < 2:
        return np.full(len(z), np.nan)
    dt_s = float(np.median(np.diff(series.t_min))) * 60.0 or 0.1
    n = max(1, round(window_s / dt_s))
    zc = np.concatenate([[0], np.cumsum(z * valid)])
    vc = np.concatenate([[0], np.cumsum(valid)])
    idx = np.arange(len(z))
    lo = np.maximum(0, idx + 1 - n)
    count = vc[idx + 1] - vc[lo]
    plv = np.abs(zc[idx + 1] - zc[lo]) / np.maximum(count, 1)
    plv[count < n / 2] = np.nan  # under half a window of phases: unknown
    return plv


def time_to_convergence(series: Series) -> float | None:
    """Minutes until every partner breathes within ``CONVERGED_BPM`` of the orb and
    stays there ``CONVERGED_HOLD_S``; None if that never happens."""
    pacer = series.get("pacer_rate_bpm")
    ok = np.isfinite(pacer)
    for label in series.labels:
        ok &= np.abs(series.get(f"{label}_rate_bpm") - pacer) <= CONVERGED_BPM
    hold_min = CONVERGED_HOLD_S / 60.0
    start = None
    for t, good in zip(series.t_min, ok, strict=True):
        if not good:
            start = None
            continue
        start = t if start is None else start
        if t - start >= hold_min:
            return float(start)
    return None


def _extras(series: Series, word: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in series.columns.items()
            if word in k and not any(k.startswith(f"{lab}_") for lab in series.labels)
            and np.isfinite(v).any()}


def _figure(series: Series, sync: dict[str, np.ndarray], threshold: float | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True, constrained_layout=True)
    panels = (("rate_bpm", "breathing rate (breaths/min)"), ("hr_bpm", "heart rate (beats/min)"),
              ("calm", "calm score (0-1)"))
    for ax, (key, ylabel) in zip(axes, panels, strict=False):
        for label in series.labels:
            ax.plot(series.t_min, series.get(f"{label}_{key}"), lw=1, label=f"partner {label}")
        ax.set_ylabel(ylabel)
    axes[0].plot(series.t_min, series.get("pacer_rate_bpm"), "k--", lw=1.2, label="orb (pacer)")
    colors = iter(("tab:green", "tab:green", "tab:purple", "tab:purple", "tab:blue"))
    for name, values in sync.items():  # each baseline dashed, in its measure's colour
        axes[3].plot(series.t_min, values, lw=1, label=name, color=next(colors, None),
                     ls="--" if "chance" in name else "-")
    if threshold is not None:
        axes[3].axhline(threshold, color="grey", ls=":", label="baseline (95th pct)")
    axes[3].set_ylabel("synchrony (0-1)")
    axes[3].set_xlabel("time since session start (min)")
    for ax in axes:
        for t, _kind in series.markers:
            ax.axvline(t, color="tab:red", lw=0.8, alpha=0.6)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8)
    for t, kind in series.markers:
        axes[0].annotate(kind, (t, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                         color="tab:red", rotation=90, va="top", ha="right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(x: float | None, unit: str = "", digits: int = 1) -> str:
    if x is None or not math.isfinite(x):
        return "not reached" if unit == "min" else "n/a"
    return f"{x:.{digits}f} {unit}".strip()


# the session's synchrony figures (docs/coregulation.md), as the report labels them
SESSION_SYNC = {
    "breath synchrony (PPC, 60 s)": "synchrony_breath_ppc",
    "its chance level (95th pct of pseudo-couples)": "synchrony_breath_ppc_chance",
    "heart-rate synchrony (lagged r)": "synchrony_hr_xcorr",
    "its chance level (95th pct)": "synchrony_hr_xcorr_chance",
}


def _last(series: Series, key: str) -> float | None:
    v = series.get(key)
    known = v[np.isfinite(v)]
    return float(known[-1]) if known.size else None


def share_text(beyond: float | None, windows: float | None) -> str:
    """"12 % (95 % CI 4-27 %, Wilson; 25 one-minute windows)", or "n/a"."""
    if beyond is None or not windows:
        return "n/a"
    lo, hi = wilson_interval(int(beyond), int(windows))
    return (f"{100 * beyond / windows:.0f} % (95 % CI {100 * lo:.0f}-{100 * hi:.0f} %, Wilson; "
            f"{windows:.0f} independent one-minute windows)")


def beyond_chance_rows(series: Series) -> list[tuple[str, str]]:
    """Time synchronous beyond chance, quiet breathing and talk apart."""
    pre = "synchrony_session_"
    if pre + "windows" in series.columns:  # the session's own judgement
        quiet = share_text(_last(series, pre + "windows_beyond_chance"),
                           _last(series, pre + "windows"))
        talk_n = _last(series, pre + "talk_windows")
        talk_pct = _last(series, pre + "talk_synchrony_beyond_chance_percent")
        talk = "n/a" if not talk_n or talk_pct is None else share_text(
            talk_pct * talk_n / 100.0, talk_n)
    elif len(series.labels) >= 2:  # older recordings: from the recorded phases
        c = offline_counts(per_second_rows(series))
        quiet, talk = (share_text(c["beyond"], c["windows"]),
                       share_text(c["talk_beyond"], c["talk_windows"]))
    else:
        return []
    return [("time synchronous beyond chance (quiet breathing)", quiet),
            ("time synchronous beyond chance (while talking)", talk)]


def per_second_rows(series: Series) -> np.ndarray:
    """One row a second (phase A, phase B, orb, heart rates, talk), as coach.synchrony."""
    a, b = series.labels[:2]
    t_s = series.t_min * 60.0
    if len(t_s) == 0:
        return np.zeros((0, 6))
    pick = np.searchsorted(t_s, np.arange(math.ceil(t_s[0]), math.floor(t_s[-1]) + 1) - 1e-6)
    pick = pick[pick < len(t_s)]
    orb = np.nan_to_num(series.get("pacer_phase"), nan=0.0)
    talk = np.nan_to_num(series.get(f"{a}_talking")) + np.nan_to_num(series.get(f"{b}_talking"))
    cols = (series.get(f"{a}_phase"), series.get(f"{b}_phase"), orb,
            series.get(f"{a}_hr_bpm"), series.get(f"{b}_hr_bpm"), (talk > 0).astype(float))
    return np.column_stack([c[pick] for c in cols])


def summarize(series: Series) -> tuple[list[tuple[str, str]], dict[str, np.ndarray], float | None]:
    """Summary rows, synchrony curves to draw, and the baseline threshold."""
    sync = {name: series.columns[key] for name, key in SESSION_SYNC.items()
            if key in series.columns and np.isfinite(series.columns[key]).any()}
    threshold = None
    if "synchrony_breath_ppc" not in series.columns and len(series.labels) >= 2:
        a, b = series.labels[:2]  # older recordings: from the recorded breath phases
        sync[f"breath PLV {a}-{b} ({PLV_WINDOW_S:.0f} s)"] = breath_plv(series, a, b)
    duration = float(series.t_min[-1]) if len(series.t_min) else 0.0
    rows = [("duration", _fmt(duration, "min")),
            ("time to convergence (all within "
             f"{CONVERGED_BPM:g}/min of the orb for {CONVERGED_HOLD_S:.0f} s)",
             _fmt(time_to_convergence(series), "min")),
            *beyond_chance_rows(series),
            ("markers", str(len(series.markers)))]
    for label in series.labels:
        values = series.get(f"{label}_coherence")
        if np.isfinite(values).any():
            rows.append((f"{label}: coherence ratio (mean)", _fmt(float(np.nanmean(values)),
                                                                 "", 2)))
    for label in series.labels:
        for key, unit in (("rate_bpm", "breaths/min"), ("hr_bpm", "beats/min")):
            v = series.get(f"{label}_{key}")
            mean = float(np.nanmean(v)) if np.isfinite(v).any() else None
            rows.append((f"{label}: mean {key.split('_')[0]}", _fmt(mean, unit)))
    return rows, sync, threshold


def render_report(reader: RecordingReader, progress: Progress | None = None) -> str:
    """The report page for a recording, as one HTML string."""
    say = progress or (lambda _msg: None)
    say(f"reading {reader.count(('state',))} states")
    series = load_series(reader)
    if len(series.t_min) == 0:
        return _page(reader, [("states", "none recorded")], None)
    say("computing synchrony and summary")
    rows, sync, threshold = summarize(series)
    say("drawing plots")
    return _page(reader, rows, _figure(series, sync, threshold))


def _page(reader: RecordingReader, rows: list[tuple[str, str]], png: str | None) -> str:
    meta = reader.meta
    title = f"coach session report: {html.escape(meta.get('started_utc', '')[:10])}"
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                      for k, v in rows)
    img = (f'<img alt="breathing, heart rate, calm and synchrony over time" '
           f'src="data:image/png;base64,{png}">' if png else "<p>No states to plot.</p>")
    labels = ", ".join(reader.labels)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{padding:.3em .8em;border-bottom:1px solid #ddd;
text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>{title}</h1>
<p>Participants: {html.escape(labels)}. Times are minutes from the session start.</p>
<table>{table}</table>
{img}
<p><small>Synchrony: pairwise phase consistency of the partners' breath phases (relative
to the orb) and the highest lagged correlation of their heart rates, over
{PLV_WINDOW_S:.0f} s, each beside its chance level: the 95th percentile of pseudo-couples
(each partner against the other's breathing from another part of the session; see
docs/coregulation.md). "Time synchronous beyond chance": the share of independent
one-minute windows above that level; by chance alone about 5 %.</small></p></body></html>
"""
