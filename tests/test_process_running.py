"""A process this one started and that has exited is not running, though `kill(pid, 0)` still finds it.

An exited child stays a zombie until its parent reaps it. The demo's registry and the Swarm tests' engines
were stopped by waiting while `kill(pid, 0)` found them: each stop took its whole time limit (5 s for the
registry, 60 s for an engine). `demo.registry.running` reaps its own children.
"""

from __future__ import annotations

import os
import subprocess
import time

from demo.registry import running


def test_an_exited_child_is_not_running_though_kill_0_still_finds_it() -> None:
    child = subprocess.Popen(["true"])
    time.sleep(0.5)  # exited by now, not reaped: a zombie
    os.kill(child.pid, 0)  # the check the stops used: no error
    assert running(child.pid) is False
    child.wait()  # subprocess copes with a child reaped under it


def test_a_live_child_and_a_process_of_someone_else_are_running() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert running(child.pid) is True
    finally:
        child.kill()
        child.wait()
    assert running(1) is True  # not our child: asked of the kernel
    assert running(child.pid) is False
