"""Colours, sizes and the dashboard style sheet, in one place."""

from __future__ import annotations

from typing import Final

# ----------------------------------------------------------------------- the orb (calm)
ORB_BG_TOP: Final = "#03081a"
ORB_BG_BOTTOM: Final = "#0a2134"
ORB_CORE: Final = "#c8f4ec"
ORB_MID: Final = "#4cc0bd"
ORB_EDGE: Final = "#1d6596"
ORB_HALO: Final = "#3fb8c0"
ORB_WORDS: Final = "#e6f4f4"
ORB_PARTNER: Final = {"A": "#f3d9a6", "B": "#cdbdf2", "T": "#bfe3c0"}
ORB_MIN_FRACTION: Final = 0.12  # of the shorter window side: radius when empty
ORB_MAX_FRACTION: Final = 0.36  # ... and when full
ORB_REST_LEVEL: Final = 0.35  # fullness shown before the pacer starts
ORB_BLEND_S: Final = 0.35  # s: a new trajectory's offset fades over this time
PARTNER_EASE_S: Final = 0.25  # s: a partner mark eases toward its 10 Hz value

# ------------------------------------------------------------------- the dashboard
BG: Final = "#0f1722"
PANEL: Final = "#172231"
PANEL_EDGE: Final = "#26364a"
TEXT: Final = "#e5edf5"
MUTED: Final = "#8fa3b8"
GRID_ALPHA: Final = 0.18
PARTNER_COLOR: Final = {"A": "#f5a25d", "B": "#6cb4ee", "T": "#b69ce0"}
PACER_COLOR: Final = "#4fd1c5"
OK_COLOR: Final = "#4ade80"
WARN_COLOR: Final = "#f59e0b"
ALERT_COLOR: Final = "#ef4444"
INFO_COLOR: Final = "#94a3b8"
MARKER_COLOR: Final = "#e879f9"
SYNC_COLORS: Final = {"breath_ppc": "#4fd1c5", "hr_xcorr": "#f472b6"}

LOW_BATTERY_PCT: Final = 15  # % at or below which a strap's battery is flagged
WAVE_WINDOW_S: Final = 60.0  # s of breathing waveform shown per partner
WAVE_CAPACITY: Final = 1200  # states kept per waveform (2 min at 10 Hz)
TREND_STEP_S: Final = 0.5  # s between trend points
TREND_CAPACITY: Final = 14_400  # trend points kept (2 h at 2 Hz)
DASHBOARD_FPS: Final = 20  # dashboard refreshes per second (states come at 10 Hz)
# px: trend curves are hairlines. Qt's raster engine strokes a wider antialiased pen
# through a general stroker: with an hour of trends (7200 points a curve) one redraw
# took 0.3 s of CPU at 1.8 px and 6 ms at 1 px (see `coach bench`, dashboard_cpu_percent).
TREND_PEN_PX: Final = 1.0
MAX_MARKER_LINES: Final = 60  # marker lines drawn in the trend plots

STYLE_SHEET: Final = f"""
QWidget {{ color: {TEXT}; font-size: 13px; }}
QMainWindow, QWidget#side, QSplitter {{ background: {BG}; }}
QFrame#card {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; border-radius: 8px; }}
QGroupBox {{ border: 1px solid {PANEL_EDGE}; border-radius: 8px; margin-top: 14px;
            padding: 8px 6px 6px 6px; background: {PANEL}; font-weight: 600; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; }}
QLabel {{ background: transparent; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#big {{ font-size: 22px; font-weight: 600; }}
QLabel#title {{ font-size: 16px; font-weight: 700; }}
QPushButton {{ background: #22324a; border: 1px solid #34496a; border-radius: 6px;
              padding: 6px 10px; }}
QPushButton:hover {{ background: #2b3f5e; }}
QPushButton:checked {{ background: #1f5d63; border-color: {PACER_COLOR}; }}
QPushButton:disabled {{ color: #5b6b7e; }}
QLineEdit, QDoubleSpinBox, QComboBox, QListWidget {{ background: #0c131d;
              border: 1px solid #34496a; border-radius: 5px; padding: 4px; }}
QProgressBar {{ background: #0c131d; border: 1px solid #34496a; border-radius: 5px;
               text-align: center; height: 16px; }}
QProgressBar::chunk {{ background: {PACER_COLOR}; border-radius: 4px; }}
QScrollArea {{ border: none; }}
"""
