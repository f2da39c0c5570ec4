"""Start a `strait serve` for a benchmark and wait for its listening line (shared by the bench
scripts that start their own gateway)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

LISTEN_RE = re.compile(r"strait: listening on http://(\S+?):(\d+)")


ADMIN_RE = re.compile(r"strait: admin on (http://\S+)")


def start(binary: str, root: Path, log: Path, access_key: str, secret_key: str,
          state_dir: Path | None = None, timeout: float = 60.0,
          extra_args: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """The process and its base URL (`http://127.0.0.1:PORT`)."""
    argv = [binary, "serve", "--root", str(root), "--listen", "127.0.0.1:0"] + (extra_args or [])
    if state_dir is not None:
        argv += ["--state-dir", str(state_dir)]
    env = dict(os.environ, STRAIT_ROOT_ACCESS_KEY=access_key, STRAIT_ROOT_SECRET_KEY=secret_key, RUST_LOG="warn")
    proc = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while not (m := LISTEN_RE.search(log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"strait did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return proc, f"http://{m.group(1)}:{m.group(2)}"


def status_kib(pid: int, field: str) -> int:
    """A `/proc/PID/status` figure in KiB (VmRSS, VmHWM, ...); 0 when absent or the process is gone."""
    try:
        for ln in open(f"/proc/{pid}/status"):
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    except OSError:
        pass
    return 0


def admin_url(log: Path) -> str | None:
    """The admin listener's URL, when the gateway was started with `--admin-listen`."""
    m = ADMIN_RE.search(log.read_text(errors="replace"))
    return m.group(1) if m else None


def gauges(admin: str, name: str, label: str) -> dict[str, int]:
    """One labelled gauge of /metrics, by label value (empty if the admin port does not answer)."""
    import urllib.request
    try:
        text = urllib.request.urlopen(admin + "/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    return {m.group(1): int(m.group(2)) for m in re.finditer(rf'{name}\{{{label}="(\w+)"\}} (\d+)', text)}


def index_memory(admin: str) -> dict[str, int]:
    """`strait_index_memory_bytes` by part (write_buffers, block_cache) from /metrics."""
    import urllib.request
    out: dict[str, int] = {}
    try:
        text = urllib.request.urlopen(admin + "/metrics", timeout=5).read().decode()
    except OSError:
        return out
    for m in re.finditer(r'strait_index_memory_bytes\{part="(\w+)"\} (\d+)', text):
        out[m.group(1)] = int(m.group(2))
    return out
