"""supervisord event listener: when a program's main process exits, end what is left of its process group.

supervisord makes every program the leader of its own process group, and `stopasgroup`/`killasgroup`
signal that group when it *stops* a program. A crash is different: when the main process dies
(SIGKILL, OOM killer), supervisord restarts it at once but leaves its children running. Those keep
its port (the uvicorn child of `mlflow server`, the scheduler's log server) or its work (gunicorn
workers answer requests until they notice their master is gone), so the restarted program would
fail to bind, or two generations would run side by side. This listener receives supervisord's
PROCESS_STATE_EXITED event, whose `pid` is the group's id, and SIGKILLs that group. While a member
of the group lives, the kernel does not hand its id out again, so the restarted program (a new
process, a new group) is never hit.
(PostgreSQL's backends leave the postmaster's group on purpose, and exit when they see it is gone.)
"""

from __future__ import annotations

import os
import signal
import sys

from supervisor import childutils


def reap(payload: str) -> str:
    """SIGKILL what is left of the exited program's process group; a line saying what happened."""
    event = childutils.get_headers(payload)
    try:
        os.killpg(int(event["pid"]), signal.SIGKILL)
    except ProcessLookupError:
        return f"{event['processname']} (pid {event['pid']}) exited; nothing of its process group was left"
    return f"{event['processname']} (pid {event['pid']}) exited; SIGKILLed what was left of its process group"


def main() -> None:
    """The event listener protocol: ready, one event, result, for as long as supervisord runs."""
    while True:
        try:
            _, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        except KeyError:  # an empty header line: stdin closed, supervisord is gone and so is our job
            return
        print(reap(payload), file=sys.stderr, flush=True)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
