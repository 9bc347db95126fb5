"""``lbc_mmdet.benchmark.cpu_use``: whose CPU time a benchmark saw."""
import os.path as osp
import subprocess
import sys


def test_cpu_watch_tells_other_processes_from_its_own_work():
    """Another process's busy loop counts as others' CPU; this process's own as its own
    (the load average cannot tell them apart)."""
    import time

    from lbc_mmdet.benchmark.cpu_use import CpuWatch
    if not osp.exists('/proc/stat'):
        return
    watch = CpuWatch()
    other = subprocess.Popen([sys.executable, '-c',
                              'import time\nt = time.time()\nwhile time.time() - t < 1.5: pass'])
    t0 = time.time()
    while time.time() - t0 < 1.5:  # our own busy loop, side by side
        pass
    res = watch.stop()
    other.wait()  # reaped after the watch stopped: its time is not counted as ours
    # the two loops share the cores alike (whatever else runs): the other one's time is
    # counted as others', ours as our own
    assert res['own_cores'] > 0.05
    assert res['others_cores'] > 0.5 * res['own_cores']
    assert res['steal_cores'] >= 0 and res['wall_s'] >= 1.5
