#!/usr/bin/env python3
"""
How much a producer's own time swings on this box, with no ckpt at all: 10,000 small files
(open, write 73 bytes, close) into a fresh folder, unwatched, and watched by a bare inotify
reader (ckpt's kernel-events mask) that reads at once, every 2 ms or every 10 ms. Three rounds.

  python3 scripts/bench/producer-noise.py

Result on the 2-core box of BENCHMARKS.md, 2026-12-07, load 0.7-1.2, first run of this script
(ms of wall / system CPU):
  unwatched 914/900, 1449/1430, 1515/1480; read at once 298/250, 1632/1720, 1539/1610;
  every 2 ms 1034/1050, 1730/1720, 1404/1390; every 10 ms 1938/1910, 1647/1620, 261/260.
The same producer with no watcher moves 5x between rounds, and a watcher of any kind moves it
less than that: scenario 5's ratio on a quiet box is decided by this noise, not by the watcher.
"""
import ctypes, os, select, shutil, tempfile, threading, time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
# src/native/inotify.ts FOLDER_MASK
MASK = 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x1000000 | 0x2000000 | 0x4000000


def produce(folder, n=10_000):
    t, r0 = time.perf_counter(), os.times()
    for i in range(n):
        fd = os.open(f"{folder}/f{i}.csv", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"x" * 73)
        os.close(fd)
    return (time.perf_counter() - t) * 1000, (os.times().system - r0.system) * 1000


def one(base, mode, pause):
    folder = os.path.join(base, mode)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    stop, reader = [False], None
    if mode != "unwatched":
        fd = libc.inotify_init1(os.O_NONBLOCK)
        libc.inotify_add_watch(fd, folder.encode(), MASK)

        def read_loop():
            p = select.poll()
            p.register(fd, select.POLLIN)
            while not stop[0]:
                p.poll(100)
                try:
                    while True:
                        os.read(fd, 65536)
                except BlockingIOError:
                    pass
                if pause:
                    time.sleep(pause)
            os.close(fd)

        reader = threading.Thread(target=read_loop)
        reader.start()
    result = produce(folder)
    stop[0] = True
    if reader:
        reader.join()
    shutil.rmtree(folder, ignore_errors=True)
    return result


if __name__ == "__main__":
    base = tempfile.mkdtemp(prefix="producer-noise-")
    try:
        for _ in range(3):
            for mode, pause in [("unwatched", 0), ("read-at-once", 0), ("read-every-2ms", 0.002), ("read-every-10ms", 0.01)]:
                wall, system = one(base, mode, pause)
                print(f"{mode:16s} wall {wall:6.0f} ms  system {system:6.0f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)
