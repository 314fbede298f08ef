"""Views of a coach session: the couple's pacing orb and the therapist's dashboard.

The UI only renders :class:`coach.types.SessionState` snapshots and sends
:class:`coach.types.Command` objects; it computes nothing physiological. Windows pull
the latest state from ``session.states`` on a ``QTimer`` at their own frame rate.
:mod:`ui.bridge` is the one module that joins asyncio and Qt (through qasync);
:func:`ui.app.run_windows` is the entry point the command line calls.
"""

from __future__ import annotations

from ui.view import SessionView

__all__ = ["SessionView"]
