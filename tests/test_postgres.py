"""The gradebook on a real PostgreSQL server: parallel workers, a reader beside them, a grader killed half-way.

A throwaway server (Debian's `postgresql` package: initdb + pg_ctl on a free port, as the `postgres` user when
the tests run as root, which PostgreSQL refuses to be). The course's nbgrader_config.py takes the database URL,
password included, from the environment variable GRADEBOOK_URL; the test checks that neither the URL nor the
password reaches a graded kernel (its environment, or any /proc/*/environ it can read).

Skipped where PostgreSQL is not installed, unless MMCOURSE_REQUIRE_POSTGRES=1 (CI), which makes it fail instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from mmcourse import classroom
from tests.test_autograde import NAME, demo_course, read_csv, submission

PASSWORD = "s3cret-gradebook-pw"


def _binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else (os.path.dirname(shutil.which("initdb")) if shutil.which("initdb")
                                                     else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    bin_dir = _binaries()
    if bin_dir is None:
        if os.environ.get("MMCOURSE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required here (MMCOURSE_REQUIRE_POSTGRES=1): apt-get install postgresql")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="mmcourse-pg-"))  # pytest's folders are closed to the postgres user
    data, sockets = base / "data", base / "sockets"
    data.mkdir()
    sockets.mkdir()
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        user = pwd.getpwnam("postgres")
        for path in (base, data, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd):
        return subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, cwd=base)

    run(f"{bin_dir}/initdb", "-D", str(data), "--auth-local=trust", "--auth-host=scram-sha-256", "-U", "postgres")
    run(f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(base / "log"), "-w", "start",
        "-o", f"-k {sockets} -p {port} -c listen_addresses=127.0.0.1")
    try:
        psql = [f"{bin_dir}/psql", "-h", str(sockets), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
        run(*psql, "-c", f"CREATE ROLE grader LOGIN PASSWORD '{PASSWORD}'")
        run(*psql, "-c", "CREATE DATABASE gradebook OWNER grader")
        yield f"postgresql://grader:{PASSWORD}@127.0.0.1:{port}/gradebook"
    finally:
        subprocess.run([*as_user, f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


SPY = ("import os, glob\n"
       "seen = dict(os.environ)\n"
       "for path in glob.glob('/proc/*/environ'):\n"
       "    try:\n"
       "        seen[path] = open(path, 'rb').read().decode(errors='replace')\n"
       "    except OSError:\n"
       "        pass\n"
       "print('SPY', seen)\n"
       "return x * x")


def test_a_class_graded_into_postgresql_loses_nothing_and_leaks_no_credentials(server, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADEBOOK_URL", server)
    root = demo_course(tmp_path / "class")
    api = classroom.open_course(root)
    assert api.coursedir.db_url == server, "nbgrader_config.py takes the gradebook's URL from GRADEBOOK_URL"
    assert api.generate_assignment(NAME)["success"]
    students = [f"s{i}" for i in range(5)] + ["spy"]
    for student in students[:5]:
        slow = "import time\ntime.sleep(3)\nreturn x ** 3" if student == "s2" else "return x ** 3"
        classroom.submit(root, NAME, student, submission(cube=slow))
    classroom.submit(root, NAME, "spy", submission(square=SPY))

    reads, errors, stop = [], [], threading.Event()

    def formgrader_reads():  # what the formgrader does while grades come in: read them, again and again
        from nbgrader.api import Gradebook

        while not stop.is_set():
            try:
                with Gradebook(server, "mmcourse") as gb:
                    reads.append({s.student.id: s.score for s in gb.assignment_submissions(NAME)})
            except Exception as err:  # noqa: BLE001 - recorded, the test fails on any
                errors.append(repr(err))
            time.sleep(0.3)

    reader = threading.Thread(target=formgrader_reads, daemon=True)
    reader.start()
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    command = [sys.executable, "-m", "mmcourse.classroom.cli", "grade", NAME, "--course", str(root), "--jobs", "2",
               "--memory-gb", "4"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in run.stdout:
        if line.startswith("[2/6]"):
            break
    run.kill()  # half-way: two grades recorded, two hand-ins in flight
    run.wait()
    halfway = _gradebook(server)
    assert len(halfway) >= 2 and all(score == 4.0 for score in halfway.values()), halfway
    assert set(read_csv(root)) == set(halfway), "the CSV has a row for every grade in the gradebook"

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    stop.set()
    reader.join()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"resuming: {len(halfway)} of 6 hand-ins" in rerun.stdout
    assert errors == [], errors[:3]
    assert len(reads) > 3 and all(set(r) <= set(students) for r in reads)
    final = _gradebook(server)
    assert final == {s: 4.0 for s in students}, final
    assert _rows_per_submission(server) == {s: 2 for s in students}, "one grade per test cell: none lost or doubled"
    assert {s: (r["status"], r["score"]) for s, r in read_csv(root).items()} == {s: ("ok", "4.0") for s in students}

    graded = nbformat.read(classroom.notebook_path(root, "autograded", NAME, "spy"), as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells for o in c.get("outputs", []))
    assert "SPY" in printed, "the spy's cell ran"
    for secret in (PASSWORD, "GRADEBOOK_URL", "postgresql://"):
        assert secret not in printed, f"{secret!r} reached the graded kernel"


def _gradebook(url: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(url, "mmcourse") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(NAME)}


def _rows_per_submission(url: str) -> dict:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    query = sqlalchemy.text(
        "SELECT s.student_id, count(g.id) FROM submitted_assignment s "
        "JOIN submitted_notebook n ON n.assignment_id = s.id JOIN grade g ON g.notebook_id = n.id "
        "GROUP BY s.student_id")
    with engine.connect() as connection:
        counts = dict(connection.execute(query).all())
    engine.dispose()
    return counts
