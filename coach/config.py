"""Named constants with their units, in one place."""

from typing import Final

# Session
STATE_PERIOD_S: Final = 0.1  # seconds between published SessionStates (10 Hz)
STRAP_SILENT_S: Final = 3.0  # seconds without data before a strap counts as lost

# Pacer (the orb)
PACER_MIN_BPM: Final = 4.5  # breaths per minute
PACER_MAX_BPM: Final = 20.0  # breaths per minute
PACER_SLEW_BPM_PER_MIN: Final = 1.0  # breaths/min the pace may change per minute
PACER_IE_RATIO: Final = 4.0 / 6.0  # inhale time / exhale time ("in for 4, out for 6")
PACER_START_WAIT_S: Final = 45.0  # wait this long for both partners' rates before starting
RESONANCE_BPM: Final = 6.0  # breaths per minute

# Anchor
ANCHOR_MARGIN: Final = 0.08  # calm-score lead the other partner needs to take over
ANCHOR_DWELL_S: Final = 45.0  # seconds that lead must hold without a break

# Breathing (chest accelerometer)
BREATH_FS_HZ: Final = 25.0  # Hz, after decimation
BREATH_BAND_HZ: Final = (0.05, 0.7)  # Hz, 3-42 breaths per minute
BREATH_AXIS_TAU_S: Final = 30.0  # s, memory of the running principal axis
BREATH_MIN_PERIOD_S: Final = 2.0  # s, no two inhale onsets closer than this

# Heart
RMSSD_WINDOW_S: Final = 60.0  # seconds of RR for RMSSD
HR_WINDOW_BEATS: Final = 5  # beats averaged for heart rate

# Calm score (first version, population ranges; see docs/coregulation.md)
CALM_TAU_S: Final = 20.0  # s, smoothing
