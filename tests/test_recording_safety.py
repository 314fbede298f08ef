"""Recordings under bad luck and bad input: odd names, read-only media, a full disk,
a recorder still writing, a newer format, damaged files opened twice, edited rows.

Every case runs the real commands in subprocesses where the user would: one line,
an honest exit code, nothing of the input changed, nothing committed lost.
Read-only media is a read-only bind mount in a private user and mount namespace
(`unshare -rm`): writes fail with EROFS even for root. A full disk is a file-size limit
(RLIMIT_FSIZE) on the recording process.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from coach.recording import Recorder, RecordingError, RecordingReader
from coach.types import HeartRate

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def coach(*args: str, timeout_s: float = 120.0,
          **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coach.cli", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout_s, check=False,
                          **kw)  # type: ignore[call-overload]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` and a hash of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30 s simulated session, recorded as a user would."""
    path = tmp_path_factory.mktemp("rec") / "s.coach"
    out = coach("record", "--out", str(path), "--duration", "30", "--speed", "max")
    assert out.returncode == 0, out.stderr
    return path


@pytest.mark.parametrize("name", ["x%41.coach", "couple#3.coach", "what?.coach",
                                  "with space.coach"])
def test_odd_names_open_their_own_file_and_leave_nothing_beside(session: Path, tmp_path: Path,
                                                                 name: str) -> None:
    path = tmp_path / name
    shutil.copyfile(session, path)
    Recorder(tmp_path / "xA.coach", labels=("T",)).close()  # what x%41 used to open
    before = snapshot(tmp_path)
    with RecordingReader(path) as reader:
        assert reader.labels == ("A", "B") and reader.closed_cleanly
        assert reader.count(("state",)) == 300
        assert sum(1 for _ in reader.raw()) > 0
    assert snapshot(tmp_path) == before  # no -wal, -shm, stray "couple" or .recovered
    out = coach("report", str(path), "--out", str(tmp_path / "r" / "page.html"))
    assert out.returncode == 0, out.stderr
    assert snapshot(tmp_path) == before


def _in_read_only_namespace(folder: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) with ``folder`` mounted read-only; ``$COACH`` is the CLI."""
    ro = (f'mount --bind "{folder}" "{folder}" && '
          f'mount -o remount,bind,ro "{folder}" "{folder}" && ')
    env = {**ENV, "COACH": f"{sys.executable} -m coach.cli"}
    return subprocess.run(["unshare", "-rm", "sh", "-c", ro + script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def test_recordings_on_read_only_media_open_and_are_left_alone(session: Path,
                                                                tmp_path: Path) -> None:
    media, out = tmp_path / "media", tmp_path / "out"
    media.mkdir()
    shutil.copyfile(session, media / "clean.coach")
    rec = Recorder(media / "crashed.coach", labels=("A",))  # left open: a -wal beside it
    for k in range(50):
        rec.write(HeartRate(float(k), "A", 60.0))
    rec._commit()
    shutil.copyfile(media / "crashed.coach", tmp_path / "c.coach")
    shutil.copyfile(Path(f"{media}/crashed.coach-wal"), tmp_path / "c.coach-wal")
    rec.close()  # the copies are what a crash leaves: file and WAL, no clean end
    (media / "crashed.coach").unlink()
    shutil.move(tmp_path / "c.coach", media / "crashed.coach")
    shutil.move(tmp_path / "c.coach-wal", media / "crashed.coach-wal")
    before = snapshot(media)
    done = _in_read_only_namespace(media, (
        f'touch "{media}/probe" 2>/dev/null && exit 99; '  # writes must really fail
        f'$COACH replay "{media}/clean.coach" && '
        f'$COACH report "{media}/clean.coach" --out "{out}/r.html" && '
        f'$COACH export "{media}/clean.coach" --out "{out}/bids" && '
        f'$COACH sessions --dir "{media}" --json && '
        f'$COACH replay "{media}/crashed.coach"'))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "recovered" not in done.stderr
    assert "crashed.coach was not closed cleanly" in done.stderr
    listed = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert {Path(x["file"]).name for x in listed} == {"clean.coach", "crashed.coach"}
    assert all("error" not in x for x in listed)
    assert snapshot(media) == before
    assert (out / "r.html").is_file() and (out / "bids" / "dataset_description.json").is_file()


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past it fail (EFBIG), as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_full_disk_stops_recording_keeps_what_was_committed_and_says_how_much(
        tmp_path: Path) -> None:
    path = tmp_path / "full.coach"
    out = coach("record", "--out", str(path), "--duration", "600", "--speed", "20",
                preexec_fn=lambda: _limit_file_size(1_500_000))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    found = re.search(r"recording stopped: the file holds the first ([\d.]+) s of the session "
                      r"\((\d+) events\)", last)
    assert found is not None, last
    with RecordingReader(path) as reader:
        assert not reader.closed_cleanly and "duration_s" not in reader.meta
        assert not reader.in_progress
        assert reader.count() == int(found.group(2))  # exactly what it said, nothing lost
        assert reader.duration_s == pytest.approx(float(found.group(1)), abs=0.2)
    listed = coach("sessions", "--dir", str(tmp_path))
    assert "not closed cleanly" in listed.stdout
    again = coach("replay", str(path))
    assert again.returncode == 0 and "Traceback" not in again.stderr


def test_a_recording_being_written_is_in_progress_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "live.coach"
    rec = Recorder(path, labels=("A",))
    rec.write(HeartRate(1.0, "A", 60.0))
    rec._commit()
    listed = coach("sessions", "--dir", str(tmp_path))
    assert "in progress" in listed.stdout and "not closed cleanly" not in listed.stdout
    read = coach("replay", str(path))
    assert "still being recorded" in read.stderr and "crash" not in read.stderr
    rec.close()
    with RecordingReader(path) as reader:
        assert reader.closed_cleanly and not reader.in_progress


def test_a_newer_format_is_refused_naming_its_version(tmp_path: Path) -> None:
    path = tmp_path / "future.coach"
    Recorder(path, labels=("A",)).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '7' WHERE key = 'format_version'")
    db.close()
    with pytest.raises(RecordingError, match="format version 7, newer than this coach"):
        RecordingReader(path)
    out = coach("replay", str(path))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "format version 7" in out.stderr


def _damage(session: Path, folder: Path) -> Path:
    path = folder / "torn.coach"
    shutil.copyfile(session, path)
    os.truncate(path, path.stat().st_size // 2)
    return path


def test_a_damaged_file_is_salvaged_once_and_the_copy_reused(session: Path,
                                                             tmp_path: Path) -> None:
    path = _damage(session, tmp_path)
    first = coach("replay", str(path))
    second = coach("report", str(path))
    for out in (first, second):
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
        assert "torn.recovered.coach" in out.stderr
    copies = sorted(p.name for p in tmp_path.iterdir() if "recovered" in p.name)
    assert copies == ["torn.recovered.coach"]
    with RecordingReader(tmp_path / "torn.recovered.coach") as reader:
        assert reader.count(("state",)) > 0


def test_salvage_on_a_full_disk_leaves_no_half_copy(session: Path, tmp_path: Path) -> None:
    path = _damage(session, tmp_path)
    out = coach("replay", str(path), preexec_fn=lambda: _limit_file_size(40_000))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "could be recovered but not saved" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["torn.coach"]


def test_edited_rows_are_skipped_with_one_warning_each(session: Path, tmp_path: Path) -> None:
    path = tmp_path / "edited.coach"
    shutil.copyfile(session, path)
    with sqlite3.connect(path) as db:
        ecg = db.execute("SELECT min(id) FROM events WHERE kind = 'ecg'").fetchone()[0]
        acc = db.execute("SELECT max(id) FROM events WHERE kind = 'acc'").fetchone()[0]
        day = db.execute("SELECT min(id) FROM events WHERE kind = 'acc'").fetchone()[0]
        db.execute("UPDATE events SET fs_hz = 0 WHERE id = ?", (ecg,))
        db.execute("UPDATE events SET t_s = t_s + 1e9 WHERE id = ?", (acc,))
        db.execute("UPDATE events SET t_s = t_s + 86400 WHERE id = ?", (day,))  # a day on
        t = db.execute("SELECT rx_s FROM events WHERE id = ?", (acc,)).fetchone()[0]
        marker = db.execute(
            "INSERT INTO events (rx_s, t_s, kind, json) VALUES (?, ?, 'marker', ?)",
            (t, t, json.dumps({"kind": "repair", "note": {"a": 1}}))).lastrowid
        db.execute("UPDATE meta SET value = '1e308' WHERE key = 'duration_s'")
    db.close()
    before = snapshot(tmp_path)
    for args, bad in ((("replay", str(path)), {ecg, acc, day, marker}),
                      (("export", str(path), "--out", str(tmp_path / "bids")),
                       {ecg, acc, day, marker}),
                      (("report", str(path), "--out", str(tmp_path / "r.html")), {marker})):
        out = coach(*args, timeout_s=60)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
        named = {int(x) for x in re.findall(r"skipped damaged event (\d+)", out.stderr)}
        # every bad row it read (the report reads states, markers and a chunk or two)
        assert bad <= named <= {ecg, acc, day, marker}, out.stderr
        assert out.stderr.count("skipped damaged event") == len(named)  # once each
    after = snapshot(tmp_path)
    assert {k: after[k] for k in before} == before  # the recording is unchanged


def test_sessions_lists_every_recording_it_can_open(session: Path, tmp_path: Path) -> None:
    shutil.copyfile(session, tmp_path / "a.coach")
    shutil.copyfile(session, tmp_path / "old-name.sqlite")
    (tmp_path / "notes.txt").write_text("not a recording")
    (tmp_path / "a.html").write_text("<html></html>")
    other = sqlite3.connect(tmp_path / "photos.db")  # another program's database
    other.execute("CREATE TABLE t (x)")
    other.close()
    out = coach("sessions", "--dir", str(tmp_path))
    listed = sorted(line.split()[-1] for line in out.stdout.splitlines())
    assert listed == ["a.coach", "old-name.sqlite"]
    assert coach("replay", str(tmp_path / "photos.db")).stderr.strip().endswith(
        "photos.db is not a coach recording")
    assert not [p for p in tmp_path.iterdir() if "recovered" in p.name]  # nothing salvaged


def test_record_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "taken.coach"
    path.write_bytes(b"precious")
    out = coach("record", "--out", str(path), "--duration", "5", "--speed", "max")
    assert out.returncode == 2 and "already exists" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and path.read_bytes() == b"precious"


def test_reports_never_replace_the_recording_or_a_file(session: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.coach"
    shutil.copyfile(session, path)
    before = snapshot(tmp_path)
    same = coach("report", str(path), "--out", str(path))
    assert same.returncode == 2 and "is the recording itself" in same.stderr
    (tmp_path / "s.html").write_text("the therapist's notes")
    taken = coach("report", str(path))
    assert taken.returncode == 2 and "already exists" in taken.stderr
    assert (tmp_path / "s.html").read_text() == "the therapist's notes"
    assert {k: v for k, v in snapshot(tmp_path).items() if k != "s.html"} == before
    forced = coach("report", str(path), "--force")
    assert forced.returncode == 0 and "<html" in (tmp_path / "s.html").read_text()
    deep = tmp_path / "new" / "folder" / "page.html"
    made = coach("report", str(path), "--out", str(deep))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(deep.stat().st_mode) == 0o600
    for folder in (deep.parent, deep.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_exports_are_private_and_many_couples_share_a_folder(session: Path,
                                                             tmp_path: Path) -> None:
    second = tmp_path / "second.coach"
    shutil.copyfile(session, second)
    with sqlite3.connect(second) as db:  # another couple, another day
        db.execute("UPDATE meta SET value = ? WHERE key = 'started_utc'",
                   (json.dumps("2027-01-02T03:04:05+00:00"),))
    db.close()
    bids = tmp_path / "bids"
    itself = coach("export", str(second), "--out", str(second))
    assert itself.returncode == 2 and "is the recording itself" in itself.stderr
    assert coach("export", str(session), "--out", str(bids)).returncode == 0
    files = snapshot(bids)
    assert coach("export", str(second), "--out", str(bids)).returncode == 0
    subjects = sorted(p.name for p in bids.iterdir() if p.is_dir())
    assert len(subjects) == 4 and {s[-1] for s in subjects} == {"A", "B"}
    assert all(re.fullmatch(r"sub-[A-Za-z0-9]+", s) and "2027" not in s for s in subjects)
    again = coach("export", str(second), "--out", str(bids))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert {k: v for k, v in snapshot(bids).items() if k in files} == files
    for p in bids.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    assert stat.S_IMODE(bids.stat().st_mode) == 0o700


def test_a_note_with_a_line_break_and_a_tab_stays_one_event(tmp_path: Path) -> None:
    from coach.export import export_bids
    from coach.types import Marker

    path = tmp_path / "n.coach"
    with Recorder(path, labels=("A",)) as rec:
        rec.write(Marker(1.0, "rupture", 'raised voices\nthen\tsilence "long"'))
    with RecordingReader(path) as reader:
        export_bids(reader, tmp_path / "bids", subject_prefix="c1")
    text = next((tmp_path / "bids").rglob("*_events.tsv")).read_text()
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    assert len(rows) == len(text.splitlines()) == 2  # header and the one marker
    assert all(len(row) == 5 for row in rows)
    assert rows[1][2:] == ["marker", "rupture", 'raised voices\\nthen\tsilence "long"']
