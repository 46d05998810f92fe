"""Kills the step process groups of a runner that died: run by :class:`~.processes.ProcessTracker`.

The runner writes ``<pgid>`` when a step's process starts and ``-<pgid>`` when it ended; this
process reads them from its standard input, a pipe only the runner holds. End of input while
groups are listed means the runner died without stopping them (SIGKILL, out of memory): the
kernel closed the pipe. Then every listed group gets SIGKILL, the script's own child
processes included (the kernel's parent-death signal reaches only the script itself).
"""

import os
import signal
import sys


def main() -> None:
    groups: set[int] = set()
    for line in sys.stdin:
        text = line.strip()
        if text.startswith("-") and text[1:].isdigit():
            groups.discard(int(text[1:]))
        elif text.isdigit():
            groups.add(int(text))
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # the group is already gone


if __name__ == "__main__":
    main()
