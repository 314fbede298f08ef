"""A session report a therapist can hand over: one self-contained HTML page.

Breathing rate (with the orb's), heart rate, calm and synchrony are drawn as inline SVG
on one time axis (minutes from the session start), in the dashboard's colours, on
honest axes (calm 0-1, synchrony over its whole range), with every marker numbered and
listed with its note. A provenance block says where the data came from (real straps or
a simulation, scenario and seed, start, file, coach versions, streams and breathing
sources per partner); a table lists strap losses, anchor changes and alerts; the
definitions a reader needs are on the page. Plots need the 2-minute baseline: a
shorter session says so instead of drawing empty axes. Drawing needs no plotting
library: each panel is a few SVG polylines (:class:`Panel`; a new figure is a new
panel in :func:`panels`).

The summary gives the time synchronous beyond chance (share of independent one-minute
windows, with its Wilson interval; see coach.synchrony), quiet breathing and talk apart:
the session's own judgement when its states carry it; for older recordings judged here
from the recorded breath phases the same way, offline (coach.synchrony.offline_counts,
pseudo-couples from the whole session). Their breath curve is the sliding phase locking
value of the partners' phase difference (Lachaux et al. 1999).

References
----------
Lachaux, J.-P., Rodriguez, E., Martinerie, J., Varela, F. J. (1999). Measuring phase
synchrony in brain signals. Human Brain Mapping, 8(4), 194-208.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coach.export import flatten_state
from coach.recording import RecordingReader, coach_version
from coach.synchrony import offline_counts, wilson_interval

PLV_WINDOW_S = 60.0  # s, sliding window of the breath phase locking value
BASELINE_S = 120.0  # s from the start that count as the couple's baseline
CONVERGED_BPM = 1.0  # breaths/min: a partner within this of the orb follows it
CONVERGED_HOLD_S = 60.0  # s every partner must stay within it to count as converged
MAX_POINTS = 1200  # points per curve: bucket means beyond (a page stays small)
MAX_EVENT_ROWS = 300  # rows of the events table

# The dashboard's colours (ui/style.py; coach does not import ui: a test keeps them equal)
PARTNER_COLOR = {"A": "#f5a25d", "B": "#6cb4ee", "T": "#b69ce0"}
PACER_COLOR = "#4fd1c5"
MARKER_COLOR = "#e879f9"
SYNC_COLORS = {"breath_ppc": "#4fd1c5", "hr_xcorr": "#f472b6"}
INK, MUTED, GRID = "#1f2933", "#66788a", "#d9e2ec"

Progress = Callable[[str], None]


@dataclass
class Series:
    """State fields as arrays over time (minutes from the start), NaN where unknown.

    ``markers`` are (minutes, kind, note); ``anchors`` and ``alerts`` hold the raw
    per-state values the events table is built from.
    """

    t_min: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    markers: list[tuple[float, str, str]] = field(default_factory=list)
    anchors: list[Any] = field(default_factory=list)
    sources: dict[str, Counter[str]] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        return self.columns.get(name, np.full(len(self.t_min), np.nan))

    @property
    def duration_min(self) -> float:
        return float(self.t_min[-1]) if len(self.t_min) else 0.0


def load_series(reader: RecordingReader) -> Series:
    """The recording's states as numeric columns, plus its markers with their notes."""
    origin = reader.t_origin_s
    rows = [flatten_state(s, origin) for s in reader.states()]
    t = np.array([r["t_s"] for r in rows], dtype=float) / 60.0
    names = dict.fromkeys(k for r in rows for k in r if k != "t_s")
    cols: dict[str, np.ndarray] = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if all(v is None or isinstance(v, int | float) for v in values):
            cols[name] = np.array([np.nan if v is None else float(v) for v in values])
    markers = [((e.t_s - origin) / 60.0, e.item.kind, e.item.note)
               for e in reader.entries(("marker",))]
    sources = {label: Counter(str(r.get(f"{label}_source")) for r in rows
                              if r.get(f"{label}_source")) for label in reader.labels}
    statuses = {label: [str(r.get(f"{label}_status")) for r in rows] for label in reader.labels}
    return Series(t, cols, reader.labels, markers, [r.get("anchor") for r in rows], sources,
                  statuses)


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


@dataclass
class Curve:
    """One line of a panel."""

    name: str
    values: np.ndarray
    color: str
    dashed: bool = False


@dataclass
class Panel:
    """One plot: curves over the session's time, on a fixed y range."""

    key: str
    title: str
    y_range: tuple[float, float]
    curves: list[Curve]
    empty: str = "no data"  # what the panel says when no curve has a value


def panels(series: Series, sync: dict[str, np.ndarray]) -> list[Panel]:
    """The report's figures, top to bottom (add a panel here to add a figure)."""
    def partner(key: str) -> list[Curve]:
        return [Curve(f"partner {label}", series.get(f"{label}_{key}"),
                      PARTNER_COLOR.get(label, INK)) for label in series.labels]

    rate = [*partner("rate_bpm"), Curve("orb (pacer)", series.get("pacer_rate_bpm"),
                                        PACER_COLOR, dashed=True)]
    hr = partner("hr_bpm")
    sync_curves = []
    for name, values in sync.items():
        measure = "hr_xcorr" if "hr_xcorr" in SESSION_SYNC.get(name, "") else "breath_ppc"
        sync_curves.append(Curve(name, values, SYNC_COLORS[measure],
                                 dashed="chance" in name))
    low = -1.0 if any(np.nanmin(c.values) < 0 for c in sync_curves
                      if np.isfinite(c.values).any()) else 0.0
    return [
        Panel("rate", "Breathing rate (breaths/min) and the orb's pace",
              (0.0, _top(rate, 30.0)), rate),
        Panel("hr", "Heart rate (beats/min)", (min(40.0, _bottom(hr, 40.0)), _top(hr, 140.0)),
              hr),
        Panel("calm", "Calm score (0 = most activated, 1 = calmest)", (0.0, 1.0),
              partner("calm"), "the calm score needs each partner's 2-minute baseline"),
        Panel("sync", "Synchrony (breath phase consistency, PPC: 0 = none, below 0 by "
                      "chance; heart-rate correlation -1 to 1)"
              if low < 0 else "Synchrony (phase locking value, 0 to 1)", (low, 1.0),
              sync_curves, "synchrony needs 2 minutes with both partners' breathing"),
    ]


def _top(curves: list[Curve], at_least: float) -> float:
    peaks = [float(np.nanmax(c.values)) for c in curves if np.isfinite(c.values).any()]
    return float(max([at_least, *[math.ceil(p / 10.0) * 10.0 for p in peaks]]))


def _bottom(curves: list[Curve], at_most: float) -> float:
    lows = [float(np.nanmin(c.values)) for c in curves if np.isfinite(c.values).any()]
    return float(min([at_most, *[math.floor(v / 10.0) * 10.0 for v in lows]]))


def thin(t: np.ndarray, v: np.ndarray, n: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points: means of equal time buckets (NaN where a bucket has none)."""
    if len(t) <= n:
        return t, v
    edges = np.linspace(t[0], t[-1], n + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n - 1)
    ok = np.isfinite(v)
    sums = np.bincount(idx[ok], weights=v[ok], minlength=n)
    counts = np.bincount(idx[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return (edges[:-1] + edges[1:]) / 2.0, means


W, H, LEFT, RIGHT, TOP, BOTTOM = 1000, 190, 64, 16, 8, 34  # px of one panel


def _ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / target
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)),
               key=lambda x: abs(x - raw))
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step + 1e-9) + 1)]


def svg_panel(panel: Panel, t_min: np.ndarray, t_end: float,
              markers: list[tuple[float, str, str]]) -> str:
    """One panel as inline SVG: axes, grid, curves, numbered markers and a legend."""
    lo, hi = panel.y_range
    x_end = max(t_end, 1e-9)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + pw * t / x_end

    def y(v: float) -> float:
        return TOP + ph * (1.0 - (v - lo) / (hi - lo))

    keys = "".join(
        f'<span class="sw{" dash" if c.dashed else ""}" style="border-color:{c.color}"></span>'
        f"{html.escape(c.name)} " for c in panel.curves)
    out = [f'<figure class="panel" data-key="{panel.key}" data-ymin="{lo:g}" '
           f'data-ymax="{hi:g}"><figcaption><b>{html.escape(panel.title)}</b>{keys}'
           f'</figcaption><svg viewBox="0 0 {W} {H}" width="100%" role="img" '
           f'aria-label="{html.escape(panel.title)}">']
    for v in _ticks(lo, hi, 5):
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="{GRID}"/><text x="{LEFT - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end" class="tick">{v:g}</text>')
    for t in _ticks(0.0, x_end, 10):
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" y2="{TOP + ph}" '
                   f'stroke="{GRID}"/><text x="{x(t):.1f}" y="{H - 16}" text-anchor="middle" '
                   f'class="tick">{t:g}</text>')
    out.append(f'<text x="{W - RIGHT}" y="{H - 2}" text-anchor="end" class="tick">'
               'minutes from the session start</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" '
               f'stroke="{MUTED}"/>')
    for n, (t, kind, note) in enumerate(markers, 1):
        tip = html.escape(f"{n}. {kind}" + (f": {note}" if note else ""))
        out.append(f'<g><title>{tip}</title><line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" '
                   f'y2="{TOP + ph}" stroke="{MARKER_COLOR}" stroke-width="1.5"/>'
                   f'<text x="{x(t) + 3:.1f}" y="{TOP + 12}" class="mark">{n}</text></g>')
    drawn = False
    for curve in panel.curves:
        tt, vv = thin(t_min, np.clip(curve.values, lo, hi))
        dash = ' stroke-dasharray="6 4"' if curve.dashed else ""
        for seg in _segments(tt, vv):
            drawn = True
            pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in seg)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{curve.color}" '
                       f'stroke-width="1.6"{dash}/>')
    if not drawn:
        out.append(f'<text x="{LEFT + pw / 2}" y="{TOP + ph / 2}" text-anchor="middle" '
                   f'class="empty">{html.escape(panel.empty)}</text>')
    out.append("</svg></figure>")
    return "\n".join(out)


def _segments(t: np.ndarray, v: np.ndarray) -> Iterator[list[tuple[float, float]]]:
    """Runs of finite points (a gap in the data is a gap in the line)."""
    run: list[tuple[float, float]] = []
    for a, b in zip(t, v, strict=True):
        if math.isfinite(b):
            run.append((float(a), float(b)))
        elif run:
            yield run
            run = []
    if run:
        yield run


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
    duration = series.duration_min
    short = duration * 60.0 < BASELINE_S
    beyond = ([("time synchronous beyond chance (quiet breathing)", "needs 2 minutes")]
              if short else beyond_chance_rows(series))
    rows = [("duration", _fmt(duration, "min")),
            ("time to convergence (all within "
             f"{CONVERGED_BPM:g}/min of the orb for {CONVERGED_HOLD_S:.0f} s)",
             _fmt(time_to_convergence(series), "min")),
            *beyond,
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
            rows.append((f"{label}: mean {key.split('_')[0]}", _fmt(mean, unit)))  # hr: heart
    return rows, sync, threshold


def events_table(reader: RecordingReader, series: Series) -> list[tuple[float, str, str]]:
    """(minutes, what, detail) of strap losses and returns, anchor changes, alerts and
    markers, in time order (the straps' status as the session's states gave it)."""
    rows: list[tuple[float, str, str]] = []
    for label, statuses in series.statuses.items():  # as the dashboard showed them
        since: tuple[str, float] | None = None
        for t, cond in zip(series.t_min, statuses, strict=True):
            bad = cond in ("lost", "no-contact")
            if bad and (since is None or since[0] != cond):
                what = "strap lost" if cond == "lost" else "strap: no skin contact"
                rows.append((float(t), f"{what} ({label})", ""))
                since = (cond, float(t))
            elif not bad and cond == "ok" and since is not None:
                rows.append((float(t), f"strap back ({label})",
                             f"after {60.0 * (t - since[1]):.0f} s"))
                since = None
    prev = None
    for t, anchor in zip(series.t_min, series.anchors, strict=True):
        if anchor != prev and (prev is not None or anchor is not None):
            rows.append((float(t), "anchor", f"partner {anchor}" if anchor else "none"))
        prev = anchor
    for label in series.labels:
        alert = series.get(f"{label}_alert")
        on = np.isfinite(alert) & (alert > 0.5)
        starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
        ends = np.flatnonzero(~on & np.r_[False, on[:-1]])
        for i in starts:
            stop = ends[ends > i]
            lasted = (f"for {60.0 * (series.t_min[stop[0]] - series.t_min[i]):.0f} s"
                      if len(stop) else "until the end")
            rows.append((float(series.t_min[i]), f"alert ({label})",
                         f"arousal spike, the orb held its pace; {lasted}"))
    for n, (t, kind, note) in enumerate(series.markers, 1):
        rows.append((t, f"marker {n}: {kind}", note))
    return sorted(rows, key=lambda r: r[0])


def provenance(reader: RecordingReader, series: Series) -> list[tuple[str, str]]:
    """Where the data came from, as (field, value) rows."""
    settings = reader.settings
    source = settings.get("source")
    if source in ("simulation", "demo"):
        kind = "simulated couple (not real people)"
        if settings.get("straps"):
            kind += f"; {settings['straps']}"
    elif source == "straps":
        kind = "real chest straps" + (" (ECG and accelerometer where the strap has them)"
                                      if settings.get("use_pmd", True) else " (HR/RR only)")
    else:
        kind = "not recorded"
    rows = [("data", kind)]
    if "scenario" in settings:
        rows.append(("scenario, seed", f"{settings['scenario']}, seed {settings.get('seed')}"))
    rows += [("session start (UTC)", str(reader.meta.get("started_utc", "not recorded"))),
             ("recording file", reader.path.name),
             ("recording state", ("still being recorded" if reader.in_progress else
                                  "closed cleanly" if reader.closed_cleanly else
                                  "not closed cleanly (its recorder stopped early)")
              + ("; salvaged from a damaged file" if reader.meta.get("recovered") else "")),
             ("recorded by", "coach " + str(reader.meta.get(
                 "coach_version", "(an early version that did not say)"))),
             ("report by", f"coach {coach_version()}")]
    for label in reader.labels:
        streams = []
        for kind, name in (("ecg", "ECG"), ("acc", "accelerometer"), ("hr", "heart rate/RR")):
            rate = next((e.item.fs_hz for e in reader.entries((kind,), label)), None) \
                if kind != "hr" else None
            if reader_has(reader, kind, label):
                streams.append(f"{name} {rate:g} Hz" if rate else name)
        used = series.sources.get(label, Counter())
        total = sum(used.values())
        share = ", ".join(f"{SOURCE_NAMES.get(k, k)} {_percent(n / total)}"
                          for k, n in used.most_common()) if total else "none"
        rows.append((f"partner {label}", f"streams: {', '.join(streams) or 'none'}; "
                                         f"breathing from: {share}"))
    return rows


def _percent(x: float) -> str:
    return "under 1 %" if 0 < x < 0.005 else f"{100 * x:.0f} %"


SOURCE_NAMES = {"acc": "chest accelerometer", "ecg": "ECG", "rr": "RR intervals"}


def reader_has(reader: RecordingReader, kind: str, label: str) -> bool:
    return next(iter(reader.entries((kind,), label)), None) is not None


DEFINITIONS = [
    ("Breathing rate", "breaths a minute, estimated from the chest strap (accelerometer, "
     "ECG or the heart's rhythm, whichever is best at the time)."),
    ("The orb", "the shared pacer both partners breathe with. It starts at the couple's "
     "pace and drifts slowly toward the calmer partner's (the anchor's) rhythm; it holds "
     "its pace when a partner's arousal spikes."),
    ("Anchor", "the calmer partner, whose rhythm the orb drifts toward."),
    ("Calm score", "0 (most activated) to 1 (calmest) against each partner's own first "
     "2 minutes (their baseline), 0.5 = as then: heart rate and heart-rate variability "
     "most, breathing rate and regularity a little. It needs those 2 minutes first."),
    ("Breath synchrony (PPC)", f"how steadily the partners' breathing phases keep the "
     f"same relation over {PLV_WINDOW_S:.0f} s: 0 none (on average, for unrelated "
     "breathing), 1 in lock-step. Its chance level is what pseudo-couples reach: each "
     "partner against the other's breathing from another part of the session (relative "
     "to the orb, read where the orb stood at the same point of its cycle)."),
    ("Heart-rate synchrony", "the highest correlation of the partners' heart rates over "
     "short lags (-1 to 1), beside its chance level from the same pseudo-couples."),
    ("Time synchronous beyond chance", "the share of independent one-minute windows in "
     "which breath synchrony stood above its chance level (by chance alone at most 5 %), "
     "with its 95 % Wilson interval; talk counted apart."),
    ("Alert", "a sharp rise of a partner's arousal (outside the window of tolerance)."),
    ("Strap lost", "no data from a strap (out of range, battery, taken off)."),
]


def render_report(reader: RecordingReader, progress: Progress | None = None) -> str:
    """The report page for a recording, as one HTML string."""
    say = progress or (lambda _msg: None)
    say(f"reading {reader.count(('state',))} states")
    series = load_series(reader)
    say("computing synchrony and summary")
    rows, sync, threshold = summarize(series)
    figures = ""
    if series.duration_min * 60.0 < BASELINE_S:
        figures = (f'<p class="note">This session is {series.duration_min:.1f} min long. '
                   "The plots need at least 2 minutes: the first 2 minutes are each "
                   "partner's baseline.</p>")
    else:
        say("drawing plots")
        drawn = panels(series, sync)
        if threshold is not None:
            drawn[-1].curves.append(Curve("baseline (95th pct)",
                                          np.full(len(series.t_min), threshold), MUTED, True))
        figures = "\n".join(svg_panel(p, series.t_min, series.duration_min, series.markers)
                             for p in drawn)
    return _page(reader, rows, figures, provenance(reader, series),
                 events_table(reader, series))


def _table(rows: list[tuple[str, ...]], head: tuple[str, ...] | None = None) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        first, *rest = row
        out.append(f"<tr><th>{html.escape(first)}</th>"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in rest) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _mmss(t_min: float) -> str:
    sec = max(0, round(t_min * 60.0))
    return f"{sec // 60}:{sec % 60:02d}"


def _page(reader: RecordingReader, rows: list[tuple[str, str]], figures: str,
          origin: list[tuple[str, str]], events: list[tuple[float, str, str]]) -> str:
    started = str(reader.meta.get("started_utc", ""))[:10]
    title = html.escape(f"Breathing-coach session report, {started}" if started
                        else "Breathing-coach session report")
    labels = ", ".join(f"partner {x}" for x in reader.labels)
    more = len(events) - MAX_EVENT_ROWS
    shown = [(_mmss(t), what, detail) for t, what, detail in events[:MAX_EVENT_ROWS]]
    if more > 0:
        shown.append(("", f"... and {more} more", ""))
    event_html = (_table(shown, ("time (min:s)", "what", "detail")) if shown
                  else "<p>No strap losses, anchor changes, alerts or markers.</p>")
    legend = "".join(f'<span class="sw" style="border-color:{PARTNER_COLOR.get(x, INK)}">'
                     f"</span>partner {html.escape(x)} " for x in reader.labels)
    defs = "\n".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                      for k, v in DEFINITIONS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:"DejaVu Sans",Arial,sans-serif;max-width:1040px;margin:2em auto;
color:{INK};padding:0 1em}}h1{{font-size:1.5em}}h2{{font-size:1.15em;margin-top:1.6em;
border-bottom:2px solid {GRID};padding-bottom:.2em}}table{{border-collapse:collapse;
margin:.5em 0}}th,td{{padding:.25em .8em;border-bottom:1px solid {GRID};text-align:left;
vertical-align:top;white-space:pre-line}}th{{font-weight:600}}.panel{{display:block;margin:.8em 0}}
figcaption b{{margin-right:1em}}figcaption{{font-size:.9em}}.tick{{font-size:11px;fill:{MUTED}}}
.mark{{font-size:11px;font-weight:700;fill:{MARKER_COLOR}}}.empty{{font-size:14px;
fill:{MUTED}}}.sw{{display:inline-block;width:1.6em;height:0;border-top:3px solid;
margin:0 .3em .25em .8em}}.sw.dash{{border-top-style:dashed}}
.note{{padding:1em;background:#f4f7fa;border-left:4px solid {PACER_COLOR}}}dt{{font-weight:600;
margin-top:.4em}}dd{{margin-left:1.2em}}@media print{{body{{margin:0}}}}</style></head>
<body><h1>{title}</h1>
<p>{html.escape(labels)}. {legend}<span class="sw dash" style="border-color:{PACER_COLOR}">
</span>orb.
Times are minutes from the session start. Participants are labels, never names.</p>
<h2>Summary</h2>
{_table(rows)}
<h2>Over the session</h2>
{figures}
<h2>Events: strap losses, anchor changes, alerts and markers</h2>
{event_html}
<h2>Where these data come from</h2>
{_table(origin)}
<h2>What the figures mean</h2>
<dl>{defs}</dl>
</body></html>
"""
