"""The approval prompt reads right in a real terminal (issue 24): rich must not eat "[a]", "[e]" and "[r]" as
markup, which printed "pprove, dit value, eject". Runs the bot's own stdin reader under a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READ = ("import asyncio\n"
        "from rich.console import Console\n"
        "from bot.terminal.proposals import CHOICES\n"
        "from bot.terminal.session import stdin_reader\n"
        "line = asyncio.run(stdin_reader(Console())(CHOICES + ': '))\n"
        "print('GOT', repr(line))\n")


def _in_a_terminal(code: str, typed: bytes, deadline_seconds: float = 60) -> str:
    main, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=child, stdout=child, stderr=child, env=env, cwd=REPO)
    os.close(child)
    os.write(main, typed)
    out, deadline = b"", time.monotonic() + deadline_seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(main)
        proc.wait(timeout=30)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


def test_the_approval_choices_keep_their_brackets_in_a_terminal():
    shown = _in_a_terminal(READ, b"a\n")
    assert "[a]pprove, [e]dit value, [r]eject, or Enter to leave it pending" in shown, shown
    assert "GOT 'a'" in shown, shown
