"""Stopping a suite's training child (started in its own session) with its process
group."""
import os
import signal
import subprocess


def terminate(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Stop a child started with ``start_new_session=True`` and its process group."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
