"""Processes as data: one `Program` per service, rendered into one supervisord config per home.

supervisord starts, supervises, restarts and stops what the config describes; we only describe it.
The config carries each program's own secrets in its `environment=` (nothing secret goes on a
command line, where `ps` shows it to every local user), so it is written with mode 0600 into a 0700
directory, and supervisord is controlled over a unix socket there (chmod 0700), never a TCP port.

supervisord leaves behind what a crashed program started (the uvicorn child of `mlflow server`,
gunicorn's workers, the scheduler's executor processes), and they would keep its port: the reaper
event listener (ops.manager.reaper) ends that process group, so the automatic restart can bind.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ticket_ab.durable import UMASK

CONF, SOCKET, PIDFILE, LOGFILE = "supervisord.conf", "supervisord.sock", "supervisord.pid", "supervisord.log"
REAPER = "reaper"
# supervisor's config parser ends a value at ` ;` or ` #`, and its environment parser cannot quote `"`.
_UNSAFE = re.compile(r"[\r\n]|\s[;#]")


@dataclass(frozen=True)
class Program:
    """One `[program:name]`: how supervisord runs, restarts and stops one service."""

    name: str
    command: list[str]
    directory: Path
    log: Path
    environment: dict[str, str] = field(default_factory=dict)  # over supervisord's own: its settings, its secrets
    user: str | None = None  # None: supervisord's user
    autorestart: bool = True  # False: a one-shot, whose exit status the caller checks
    startsecs: int = 1  # up this long counts as started (health is checked separately)
    startretries: int = 5  # quick failures before FATAL: a restart may have to wait for the old one's port
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20  # then SIGKILL
    stopasgroup: bool = True  # the signal goes to the program's whole process group (children included)
    killasgroup: bool = True
    priority: int = 50  # supervisord's own shutdown stops the highest first

    @classmethod
    def one_shot(cls, name: str, command: list[str], directory: Path, log: Path, environment: dict[str, str],
                 priority: int) -> Program:
        """A program that runs once per start: never restarted, `startsecs=0` so any exit is an exit, not a failure."""
        return cls(name, command, directory, log, environment, autorestart=False, startsecs=0, startretries=0,
                   priority=priority)


def _safe(value: str, what: str) -> str:
    """`value` as supervisord reads it back (`%` is its expansion character), or a clear error."""
    if _UNSAFE.search(value):
        raise ValueError(f"{what} holds a newline or ' ;'/' #', which a supervisord config cannot carry")
    return value.replace("%", "%%")


def _environment(program: Program) -> str:
    for name, value in program.environment.items():
        if '"' in value or value[:1] == "'" or value[-1:] == "'":
            raise ValueError(f"{name} of {program.name} holds a quote, which supervisord's environment= cannot carry")
    pairs = ",".join(f'{name}="{value}"' for name, value in sorted(program.environment.items()))
    return _safe(pairs, f"the environment of {program.name}")


def _program(program: Program) -> str:
    flag = {True: "true", False: "false"}
    lines = [f"[program:{program.name}]",
             f"command={_safe(shlex.join(program.command), f'the command of {program.name}')}",
             f"directory={_safe(str(program.directory), 'a directory')}",
             *([f"user={program.user}"] if program.user else []),
             *([f"environment={_environment(program)}"] if program.environment else []),
             "autostart=false",  # started in dependency order, each after what it needs is healthy
             f"autorestart={flag[program.autorestart]}",
             f"startsecs={program.startsecs}", f"startretries={program.startretries}",
             f"stopsignal={program.stopsignal}", f"stopwaitsecs={program.stopwaitsecs}",
             f"stopasgroup={flag[program.stopasgroup]}", f"killasgroup={flag[program.killasgroup]}",
             f"priority={program.priority}", f"umask={UMASK:03o}",
             "redirect_stderr=true", f"stdout_logfile={_safe(str(program.log), 'a log path')}",
             "stdout_logfile_maxbytes=50MB", "stdout_logfile_backups=3"]
    return "\n".join(lines)


def _reaper(directory: Path) -> str:
    """The event listener that ends a crashed program's leftovers (see the module docstring)."""
    return "\n".join([f"[eventlistener:{REAPER}]",
                      f"command={_safe(shlex.join([sys.executable, '-m', 'ops.manager.reaper']), 'the reaper')}",
                      "events=PROCESS_STATE_EXITED", "autostart=true", "autorestart=true", "priority=1",
                      "stdout_logfile=NONE", f"stderr_logfile={_safe(str(directory / 'reaper.log'), 'a log path')}"])


def render(programs: list[Program], directory: Path) -> str:
    """The whole config of one supervisord whose control files live in `directory`."""
    where = {name: _safe(str(directory / name), "the supervisor directory") for name in (SOCKET, PIDFILE, LOGFILE)}
    names = [program.name for program in programs]
    if len(set(names)) != len(names) or REAPER in names:
        raise ValueError(f"program names must be unique and not {REAPER!r}: {names}")
    header = ["; Rendered by ticket-ab: do not edit. It holds secrets: mode 0600.",
              "[unix_http_server]", f"file={where[SOCKET]}", "chmod=0700", "",
              "[supervisord]", f"pidfile={where[PIDFILE]}", f"logfile={where[LOGFILE]}",
              f"childlogdir={_safe(str(directory), 'the supervisor directory')}", f"umask={UMASK:03o}",
              *(["user=root"] if os.geteuid() == 0 else []), "",  # said, so supervisord does not warn about it
              "[rpcinterface:supervisor]",
              "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
              "[supervisorctl]", f"serverurl=unix://{where[SOCKET]}", ""]
    return "\n".join([*header, _reaper(directory), "", *(f"{_program(p)}\n" for p in programs)])


def write(text: str, directory: Path) -> Path:
    """Write the config into `directory` (created 0700), readable by its owner only; returns its path."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / CONF
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    return path
