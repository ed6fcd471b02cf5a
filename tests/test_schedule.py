"""schedule: launchd, systemd and cron jobs, installed into a temporary home with stand-in tools."""

from __future__ import annotations

import configparser
import datetime as dt
import os
import plistlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trader_ml.release.schedule import MONTHLY_DAYS, default_ingest_time, is_first_trading_day
from trader_ml.trading_days import first_session_of_month

# Stand-ins for crontab, launchctl and systemctl: they record their calls and keep the crontab
# in a file, so nothing on this machine is touched.
FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "$HOME/calls.log"
if [ "$(basename "$0")" = crontab ]; then
  if [ "$1" = "-l" ]; then [ -f "$HOME/crontab" ] && cat "$HOME/crontab" && exit 0; echo "no crontab for you" >&2; exit 1; fi
  if [ "$1" = "-" ]; then cat > "$HOME/crontab"; exit 0; fi
fi
"""


@pytest.fixture
def home(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("crontab", "launchctl", "systemctl"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "home").mkdir()
    return tmp_path


def schedule(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home / "home"), "PATH": f"{home / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "trader_ml", "schedule", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=home,
    )
    assert result.returncode == 0, result.stderr
    return result


def calls(home: Path) -> list[str]:
    log = home / "home" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_launchd_plist_means_monthly(home):
    schedule(home, "install", "--job", "train", "--backend", "launchd", "--store", "./mystore")
    path = home / "home" / "Library" / "LaunchAgents" / "com.trader-ml.train.plist"
    plist = plistlib.loads(path.read_bytes())
    calendar = plist["StartCalendarInterval"]
    assert sorted(c["Day"] for c in calendar) == [1, 2, 3, 4]
    assert all(set(c) == {"Day", "Hour", "Minute"} and (c["Hour"], c["Minute"]) == (7, 0) for c in calendar)
    args = plist["ProgramArguments"]
    assert args[:4] == [sys.executable, "-m", "trader_ml", "train"]
    assert args[4:] == ["--store", str(home / "mystore"), "--first-trading-day-only"]
    assert plist["StandardOutPath"] == str(home / "home" / ".trader-ml" / "logs" / "train.log")
    assert calls(home) == [f"launchctl load -w {path}"]
    schedule(home, "uninstall", "--job", "train", "--backend", "launchd")
    assert not path.exists() and calls(home)[-1] == f"launchctl unload -w {path}"


def test_cron_lines_keep_the_users_own(home):
    (home / "home" / "crontab").write_text("0 3 * * * backup.sh\n")
    schedule(
        home,
        "install",
        "--job",
        "ingest",
        "--backend",
        "cron",
        "--time",
        "22:30",
        "--store",
        "s3://bucket/x",
        "--",
        "--source",
        "yahoo,fred,gdelt",
        "--symbols",
        "AAPL,MSFT",
    )
    schedule(home, "install", "--job", "ingest", "--backend", "cron", "--time", "22:45", "--store", "s3://bucket/x")
    table = (home / "home" / "crontab").read_text()
    assert table.startswith("0 3 * * * backup.sh\n")
    jobs = [line for line in table.splitlines() if "trader_ml" in line]
    assert len(jobs) == 1  # installing again replaces, never duplicates
    assert re.fullmatch(
        rf"45 22 \* \* 1-5 {re.escape(sys.executable)} -m trader_ml ingest --store s3://bucket/x "
        rf">> \S+/\.trader-ml/logs/ingest\.log 2>&1",
        jobs[0],
    )
    schedule(home, "install", "--job", "train", "--backend", "cron")
    train = next(line for line in (home / "home" / "crontab").read_text().splitlines() if "trader_ml train" in line)
    assert train.startswith("0 7 1-4 * * ") and "--first-trading-day-only" in train
    schedule(home, "uninstall", "--job", "ingest", "--backend", "cron")
    table = (home / "home" / "crontab").read_text()
    assert "backup.sh" in table and "trader_ml ingest" not in table and "trader_ml train" in table


def test_systemd_units(home):
    schedule(home, "install", "--job", "ingest", "--backend", "systemd", "--time", "23:00")
    folder = home / "home" / ".config" / "systemd" / "user"
    timer, service = configparser.ConfigParser(), configparser.ConfigParser(interpolation=None)
    timer.read(folder / "trader-ml-ingest.timer")
    service.read(folder / "trader-ml-ingest.service")
    assert timer["Timer"]["OnCalendar"] == "Mon..Fri *-*-* 23:00:00" and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"] == f"{sys.executable} -m trader_ml ingest --store {home / 'store'}"
    assert service["Service"]["StandardOutput"].startswith("append:") and service["Service"]["StandardOutput"].endswith(
        "ingest.log"
    )
    assert calls(home) == ["systemctl --user daemon-reload", "systemctl --user enable --now trader-ml-ingest.timer"]
    schedule(home, "uninstall", "--job", "ingest", "--backend", "systemd")
    assert not list(folder.iterdir())


def test_show_touches_nothing(home):
    out = schedule(home, "show", "--job", "train", "--backend", "systemd").stdout
    assert "OnCalendar=*-*-01..04 07:00:00" in out and "first trading day" in out
    assert (
        calls(home) == [] and not (home / "home" / ".config").exists() and not (home / "home" / ".trader-ml").exists()
    )


def test_show_with_cron_needs_no_crontab(home):
    (home / "bin" / "crontab").unlink()  # a machine without cron
    out = schedule(home, "show", "--job", "train", "--backend", "cron").stdout
    assert "crontab block:" in out and "trader_ml train" in out and calls(home) == []


@pytest.mark.parametrize(
    ("day", "first"),
    [
        ("2026-11-02", True),
        ("2026-11-03", False),
        ("2026-08-03", True),
        ("2026-08-01", False),
        ("2027-01-04", True),
        ("2027-01-01", False),
        ("2026-06-01", True),
        ("2025-09-01", False),  # Labor Day
        ("2025-09-02", True),
        ("2023-01-02", False),  # New Year's Day observed on the Monday
        ("2023-01-03", True),
    ],
)
def test_first_trading_day(day, first):
    assert is_first_trading_day(dt.date.fromisoformat(day)) is first


def test_every_months_first_session_falls_on_a_scheduled_day():
    firsts = [first_session_of_month(dt.date(year, month, 1)) for year in range(2000, 2036) for month in range(1, 13)]
    assert {d.day for d in firsts} <= set(MONTHLY_DAYS) and max(d.day for d in firsts) == MONTHLY_DAYS[-1]


def test_ingest_runs_after_the_new_york_close():
    local = dt.datetime.combine(dt.date(2026, 1, 15), default_ingest_time(dt.date(2026, 1, 15))).astimezone()
    assert local.astimezone(dt.timezone(dt.timedelta(hours=-5))).time() == dt.time(16, 30)


def test_train_outside_the_first_trading_day_does_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "trader_ml", "train", "--store", str(tmp_path / "empty"), "--first-trading-day-only"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if is_first_trading_day(dt.date.today()):
        assert result.returncode == 2 and "No historical data found" in result.stderr
    else:
        assert result.returncode == 0 and "not the first trading day" in result.stdout


def test_arguments_with_newlines_are_refused(home):
    env = {**os.environ, "HOME": str(home / "home"), "PATH": f"{home / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trader_ml",
            "schedule",
            "show",
            "--job",
            "train",
            "--backend",
            "systemd",
            "--store",
            "x\nExecStartPost=/bin/sh -c evil",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "newlines or control characters" in result.stderr
    assert "ExecStartPost" not in result.stdout


def test_a_percent_or_dollar_in_the_store_path_reaches_the_job_as_written():
    """cron cuts a command at an unescaped %; systemd expands %h and $NAME inside unit lines."""
    from trader_ml.release.schedule import cron_line, make_job, systemd_plan

    home = Path("/home/u")
    job = make_job("ingest", "/data/100%store$HOME", [], dt.time(23, 0), home)
    line = cron_line(job)
    assert "/data/100\\%store$HOME" in line and "100%" not in line.replace("\\%", "")
    service = next(text for path, text in systemd_plan(job, home).files.items() if path.suffix == ".service")
    exec_start = next(row for row in service.splitlines() if row.startswith("ExecStart="))
    assert "/data/100%%store$$HOME" in exec_start
    unescaped = exec_start.replace("%%", "").replace("$$", "")
    assert "%" not in unescaped and "$" not in unescaped


def test_two_installs_at_once_keep_both_jobs(home):
    """crontab -l slowed to half a second, two installs started together: each read-modify-write
    waits for the other, so the table ends with both blocks (three rounds)."""
    slow = FAKE_TOOL.replace('if [ "$1" = "-l" ]; then', 'if [ "$1" = "-l" ]; then sleep 0.5;')
    (home / "bin" / "crontab").write_text(slow)
    env = {**os.environ, "HOME": str(home / "home"), "PATH": f"{home / 'bin'}:{os.environ['PATH']}"}
    for _ in range(3):
        (home / "home" / "crontab").write_text("0 3 * * * backup.sh\n")
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "trader_ml", "schedule", "install", "--job", job, "--backend", "cron"],
                env=env,
                cwd=home,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for job in ("train", "ingest")
        ]
        for run in runs:
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0 and "installed" in out, err
        table = (home / "home" / "crontab").read_text()
        assert "backup.sh" in table and "trader_ml train" in table and "trader_ml ingest" in table


@pytest.mark.parametrize("backend", ["cron", "systemd", "launchd"])
def test_the_daily_job_installs_on_every_scheduler(home, backend):
    """The daily job (ingest, then the day's answer written) on each scheduler, weekdays after
    the close, running ``trader_ml daily`` with the options given after --."""
    schedule(home, "install", "--job", "daily", "--backend", backend, "--store", "./mystore", "--", "--source", "yahoo")
    command = f"{sys.executable} -m trader_ml daily --store {home / 'mystore'} --source yahoo"
    at = default_ingest_time()
    if backend == "cron":
        line = next(x for x in (home / "home" / "crontab").read_text().splitlines() if "trader_ml daily" in x)
        assert line.startswith(f"{at.minute} {at.hour} * * 1-5 {command} >> ")
    elif backend == "systemd":
        folder = home / "home" / ".config" / "systemd" / "user"
        service = configparser.ConfigParser(interpolation=None)
        service.read(folder / "trader-ml-daily.service")
        assert service["Service"]["ExecStart"] == command
        assert f"Mon..Fri *-*-* {at:%H:%M}:00" in (folder / "trader-ml-daily.timer").read_text()
    else:
        plist = plistlib.loads((home / "home" / "Library" / "LaunchAgents" / "com.trader-ml.daily.plist").read_bytes())
        assert " ".join(plist["ProgramArguments"]) == command
        assert [d["Weekday"] for d in plist["StartCalendarInterval"]] == [1, 2, 3, 4, 5]
    out = schedule(home, "uninstall", "--job", "daily", "--backend", backend).stdout
    assert "not installed" not in out


@pytest.mark.parametrize("backend", ["cron", "systemd", "launchd"])
def test_uninstalling_a_job_that_is_not_installed_says_so(home, backend):
    out = schedule(home, "uninstall", "--job", "daily", "--backend", backend).stdout
    assert "the daily job is not installed" in out
    assert not any(c == "crontab -" or "enable" in c or "unload" in c or "disable" in c for c in calls(home))
