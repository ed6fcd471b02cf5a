"""When the release runs: monthly training and daily ingest as launchd, systemd or cron jobs (``trader-ml schedule``).

The installed job runs the same command a user would type (this Python, ``-m trader_ml``, the
store and options given at install time) and appends its output to
``~/.trader-ml/logs/JOB.log``. ``show`` prints what would be installed and touches nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from trader_ml.errors import TraderMLError
from trader_ml.schema import CLOSE_SETTLED, MARKET_TIMEZONE, TRAIN_TIME
from trader_ml.trading_days import first_session_of_month

JOBS = ("train", "ingest", "daily")  # daily: ingest, then write the day's answer (no Lambda needed)
# The monthly job fires on these days and works only on the first session, which falls on the
# 4th at the latest (a month starting on a weekend whose Monday is a holiday: January 2027).
MONTHLY_DAYS = (1, 2, 3, 4)
NEW_YORK = ZoneInfo(MARKET_TIMEZONE)  # daily ingest runs once the close has settled


def is_first_trading_day(day: dt.date) -> bool:
    """Whether ``day`` is its month's first session of the New York Stock Exchange."""
    return day == first_session_of_month(day)


def default_ingest_time(today: dt.date | None = None) -> dt.time:
    """16:30 in New York, in this machine's local time."""
    moment = dt.datetime.combine(today or dt.date.today(), CLOSE_SETTLED, NEW_YORK).astimezone()
    return moment.time().replace(second=0, microsecond=0, tzinfo=None)


def default_backend() -> str:
    if sys.platform == "darwin":
        return "launchd"
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        return "systemd"
    return "cron"


@dataclass(frozen=True)
class Job:
    name: str
    command: list[str]
    at: dt.time
    log: Path

    @property
    def monthly(self) -> bool:
        return self.name == "train"


def make_job(name: str, store: str, extra: list[str], at: dt.time | None, home: Path) -> Job:
    if name not in JOBS:
        raise TraderMLError(f"--job must be one of {', '.join(JOBS)}, not {name!r}")
    for value in (store, *extra):
        # A newline would end the unit file's or crontab's line and start a directive of its own.
        if any(not ch.isprintable() for ch in value):
            raise TraderMLError(f"schedule arguments may not hold newlines or control characters: {value!r}")
    store = store if store.startswith("s3://") else str(Path(store).expanduser().absolute())
    command = [sys.executable, "-m", "trader_ml", name, "--store", store, *extra]
    if name == "train":
        # Fires on days 1-4 of each month; the command works only on the first trading day.
        command.append("--first-trading-day-only")
    return Job(
        name,
        command,
        at or (TRAIN_TIME if name == "train" else default_ingest_time()),
        home / ".trader-ml" / "logs" / f"{name}.log",
    )


@dataclass(frozen=True)
class Plan:
    """Files to write, and commands that activate (or deactivate) them."""

    files: dict[Path, str]
    activate: list[list[str]]
    deactivate: list[list[str]]


def launchd_plan(job: Job, home: Path) -> Plan:
    label = f"com.trader-ml.{job.name}"
    path = home / "Library" / "LaunchAgents" / f"{label}.plist"
    if job.monthly:
        calendar = [{"Day": d, "Hour": job.at.hour, "Minute": job.at.minute} for d in MONTHLY_DAYS]
    else:
        calendar = [{"Weekday": d, "Hour": job.at.hour, "Minute": job.at.minute} for d in range(1, 6)]
    plist = {
        "Label": label,
        "ProgramArguments": job.command,
        "StartCalendarInterval": calendar,
        "StandardOutPath": str(job.log),
        "StandardErrorPath": str(job.log),
        "RunAtLoad": False,
    }
    text = plistlib.dumps(plist).decode()
    return Plan({path: text}, [["launchctl", "load", "-w", str(path)]], [["launchctl", "unload", "-w", str(path)]])


def systemd_plan(job: Job, home: Path) -> Plan:
    unit = f"trader-ml-{job.name}"
    folder = home / ".config" / "systemd" / "user"
    when = f"*-*-01..{MONTHLY_DAYS[-1]:02d} {job.at:%H:%M}:00" if job.monthly else f"Mon..Fri *-*-* {job.at:%H:%M}:00"
    log = systemd_escape(str(job.log))
    service = (
        f"[Unit]\nDescription=trader-ml {job.name}\n\n[Service]\nType=oneshot\n"
        f"ExecStart={systemd_escape(shlex.join(job.command))}\nStandardOutput=append:{log}\nStandardError=append:{log}\n"
    )
    timer = (
        f"[Unit]\nDescription=trader-ml {job.name} schedule\n\n[Timer]\nOnCalendar={when}\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return Plan(
        {folder / f"{unit}.service": service, folder / f"{unit}.timer": timer},
        [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", f"{unit}.timer"]],
        [["systemctl", "--user", "disable", "--now", f"{unit}.timer"], ["systemctl", "--user", "daemon-reload"]],
    )


def systemd_escape(text: str) -> str:
    """systemd expands ``%h`` and the like, and ``$NAME``, inside unit lines: doubled, each is itself."""
    return text.replace("%", "%%").replace("$", "$$")


def cron_line(job: Job) -> str:
    days = f"1-{MONTHLY_DAYS[-1]} * *" if job.monthly else "* * 1-5"
    command = f"{shlex.join(job.command)} >> {shlex.quote(str(job.log))} 2>&1"
    # cron ends the command at an unescaped % (and feeds the rest to it as input), quotes or not.
    return f"{job.at.minute} {job.at.hour} {days} {command.replace('%', chr(92) + '%')}"


def _markers(name: str) -> tuple[str, str]:
    return f"# >>> trader-ml {name} >>>", f"# <<< trader-ml {name} <<<"


def without_block(crontab: str, name: str) -> str:
    start, end = _markers(name)
    out, inside = [], False
    for line in crontab.splitlines():
        if line == start:
            inside = True
        elif line == end:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def _need_crontab(job: Job | None = None) -> None:
    if shutil.which("crontab") is None:
        hint = f"; or add this line to your scheduler yourself: {cron_line(job)}" if job else ""
        raise TraderMLError(f"crontab is not available here: install cron or choose --backend systemd/launchd{hint}")


def read_crontab() -> str:
    result = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else ""  # no crontab yet


def write_crontab(text: str) -> None:
    result = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise TraderMLError(f"crontab refused the new table: {result.stderr.strip()}")


def _run(commands: list[list[str]], say) -> bool:
    """Run activation commands; False (and what to run by hand) if any is missing or fails."""
    for command in commands:
        if shutil.which(command[0]) is None:
            say(f"  {command[0]} is not available here; run: {'; '.join(shlex.join(c) for c in commands)}")
            return False
        result = subprocess.run(command, capture_output=True, text=True)
        say(f"  $ {shlex.join(command)}")
        if result.returncode != 0:
            say(
                f"  failed (exit {result.returncode}): {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}"
            )
            return False
    return True


def describe(job: Job, backend: str, home: Path) -> str:
    when = (
        f"on days 1-{MONTHLY_DAYS[-1]} of each month at {job.at:%H:%M}, working only on the first trading day"
        if job.monthly
        else f"Monday to Friday at {job.at:%H:%M} local time"
    )
    lines = [f"{job.name} via {backend}, {when}; log: {job.log}", f"command: {shlex.join(job.command)}"]
    if backend == "cron":  # showing needs no crontab: only install and uninstall touch it
        start, end = _markers(job.name)
        lines += ["crontab block:", start, cron_line(job), end]
    else:
        plan = launchd_plan(job, home) if backend == "launchd" else systemd_plan(job, home)
        for path, text in plan.files.items():
            lines += [f"--- {path}", text.rstrip()]
    return "\n".join(lines)


@contextlib.contextmanager
def crontab_lock(home: Path) -> Iterator[None]:
    """One trader-ml at a time reads, edits and writes the crontab: two installs at once each
    wrote the table they had read, and one job was lost."""
    folder = home / ".trader-ml"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "crontab.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def install(job: Job, backend: str, home: Path, say=print) -> None:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    if backend == "cron":
        _need_crontab(job)
        start, end = _markers(job.name)
        block = f"{start}\n{cron_line(job)}\n{end}\n"
        with crontab_lock(home):
            write_crontab(without_block(read_crontab(), job.name) + block)
            kept = block in read_crontab()  # read back: a crontab edited by hand meanwhile wins
        if not kept:
            raise TraderMLError(
                f"the crontab changed while the {job.name} job was being installed; run the install again"
            )
        say(f"installed the {job.name} job in your crontab; log: {job.log}")
        return
    plan = launchd_plan(job, home) if backend == "launchd" else systemd_plan(job, home)
    for path, text in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        say(f"wrote {path}")
    if _run(plan.activate, say):
        say(f"installed the {job.name} job ({backend}); log: {job.log}")
    else:
        raise TraderMLError(f"wrote the {job.name} job's files, but could not activate them (see above)")


def uninstall(name: str, backend: str, home: Path, say=print) -> None:
    """Remove the job; say so, and change nothing, when it is not installed there."""
    absent = f"the {name} job is not installed ({backend}): nothing to uninstall"
    if backend == "cron":
        _need_crontab()
        with crontab_lock(home):
            table = read_crontab()
            if _markers(name)[0] not in table.splitlines():
                say(absent)
                return
            write_crontab(without_block(table, name))
        say(f"removed the {name} job from your crontab")
        return
    job = Job(name, [], TRAIN_TIME, home)
    plan = launchd_plan(job, home) if backend == "launchd" else systemd_plan(job, home)
    if not any(path.exists() for path in plan.files):
        say(absent)
        return
    _run(plan.deactivate, say)
    for path in plan.files:
        if path.exists():
            path.unlink()
            say(f"removed {path}")


def home_dir() -> Path:
    return Path(os.environ.get("HOME") or Path.home())
