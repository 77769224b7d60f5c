"""Escape attempts against the python tool, each checked from outside the sandbox.

    .venv/bin/python bench/sandbox_escapes.py

Prints ``sandbox escapes: contained N/N (layers: ...)`` and one line per attempt that got out.
``ATTEMPTS`` is the one list of attempts: ``tests/tool/test_sandbox_escapes.py`` runs each as a test,
``run_attempts()`` (also used by ``bench/reliability.py``) runs them all. Every attempt goes through
``execute_python_code`` (what the agent calls) and checks the effect outside: the listener saw no
connection, the file does not exist, the parent got no signal, no process of it is left, the secret
is not in the output. A few attempts only send harmless signals (SIGUSR1 with a handler here, SIGURG
whose default is to be ignored), so that a failed containment cannot take the machine down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from astuner.tool import execute_python_code, run_sandboxed  # noqa: E402

MARK = "astuner-escape-attempt"  # in the argv of every long-lived process an attempt starts
SLACK = 8.0  # seconds a call may take beyond its wall timeout on a loaded 2-core machine


@dataclass
class Call:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def tool(code: str, timeout: float = 10) -> Call:
    """One call of the agent's tool, parsed back from its text."""
    start = time.monotonic()
    response = asyncio.run(execute_python_code(code, timeout=timeout))
    text = response.content[0]["text"]
    m = re.fullmatch(r"<returncode>(-?\d+)</returncode><stdout>(.*)</stdout><stderr>(.*)</stderr>", text, re.S)
    assert m, text[:300]
    return Call(int(m[1]), m[2], m[3], time.monotonic() - start)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def _leftovers(before: set[int]) -> list[int]:
    """Processes started since ``before`` that belong to a sandbox call (its folder or MARK) and still run."""
    found = []
    for pid in _pids() - before:
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            if ("astuner-pytool-" in cwd or MARK.encode() in cmdline) and _alive(pid):
                found.append(pid)
    return found


def _after(before: set[int], wait: float = 0.3) -> list[int]:
    time.sleep(wait)
    return _leftovers(before)


class _Listener:
    """A TCP, UDP or abstract unix listener on this machine that records whatever reaches it."""

    def __init__(self, kind: str):
        family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        if kind == "unix":
            self.address = "\0astuner-escape-" + secrets.token_hex(6)
            self.sock.bind(self.address)
        else:
            self.sock.bind(("127.0.0.1", 0))
            self.address = self.sock.getsockname()[1]
        if kind != "udp":
            self.sock.listen()
        self.sock.setblocking(False)
        self.kind = kind

    def hits(self) -> list:
        got = []
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(self.sock.recvfrom(100) if self.kind == "udp" else self.sock.accept())
        self.sock.close()
        return got


def _net(kind: str, code_for: Callable[[object], str], timeout: float = 10) -> tuple[bool, str]:
    listener = _Listener(kind)
    call = tool(code_for(listener.address), timeout)
    hits = listener.hits()
    return (
        not hits and "SENT" not in call.stdout,
        f"{len(hits)} connection(s)/packet(s) reached the listener; {call.stdout[-200:]!r}",
    )


_CTYPES_TCP = """
import ctypes, socket, struct
libc = ctypes.CDLL(None)
fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM, bypassing socket.socket and its audit events
addr = struct.pack("<HH4s8x", 2, socket.htons({port}), socket.inet_aton("127.0.0.1"))
if fd >= 0 and libc.connect(fd, addr, len(addr)) == 0 and libc.send(fd, b"leak", 4, 0) == 4:
    print("SENT")
"""
_PLAIN_TCP = (
    "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\ns.sendall(b'leak')\nprint('SENT')"
)


def net_tcp_connect() -> tuple[bool, str]:
    return _net("tcp", lambda port: _PLAIN_TCP.format(port=port))


def net_tcp_via_ctypes() -> tuple[bool, str]:
    return _net("tcp", lambda port: _CTYPES_TCP.format(port=port))


def net_subprocess_python() -> tuple[bool, str]:
    return _net(
        "tcp",
        lambda port: (
            "import subprocess, sys\n"
            f"r = subprocess.run([sys.executable, '-c', {_CTYPES_TCP.format(port=port)!r}],"
            " capture_output=True, text=True)\n"
            "print(r.stdout, r.stderr)"
        ),
    )


def net_subprocess_curl() -> tuple[bool, str]:
    if not shutil.which("curl"):
        return True, "no curl on this machine (nothing to try)"
    return _net(
        "tcp",
        lambda port: (
            "import subprocess\n"
            f"r = subprocess.run(['curl', '-s', '-m', '3', 'http://127.0.0.1:{port}/'], capture_output=True)\n"
            "print('SENT' if r.returncode in (0, 52) else r.returncode)"
        ),  # 52: connected, empty reply
    )


def net_udp_via_ctypes() -> tuple[bool, str]:
    code = """
import ctypes, socket, struct
libc = ctypes.CDLL(None)
fd = libc.socket(2, 2, 0)  # AF_INET, SOCK_DGRAM
addr = struct.pack("<HH4s8x", 2, socket.htons({port}), socket.inet_aton("127.0.0.1"))
if fd >= 0 and libc.sendto(fd, b"leak", 4, 0, addr, len(addr)) == 4:
    print("SENT?")
"""
    return _net("udp", lambda port: code.format(port=port))


def net_dns() -> tuple[bool, str]:
    """A DNS query for a name, to a resolver we run on 127.0.0.1 (UDP), plus libc's own resolver."""
    code = """
import ctypes, socket, struct
libc = ctypes.CDLL(None)
query = b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01"
fd = libc.socket(2, 2, 0)
addr = struct.pack("<HH4s8x", 2, socket.htons({port}), socket.inet_aton("127.0.0.1"))
libc.sendto(fd, query, len(query), 0, addr, len(addr))
res = ctypes.c_void_p()
if libc.getaddrinfo(b"example.com", b"80", None, ctypes.byref(res)) == 0:
    print("SENT: resolved example.com")
"""
    return _net("udp", lambda port: code.format(port=port))


def net_raw_socket() -> tuple[bool, str]:
    call = tool("import ctypes\nfd = ctypes.CDLL(None).socket(2, 3, 1)\nprint('RAW' if fd >= 0 else 'denied')")
    return "denied" in call.stdout, f"raw ICMP socket: {call.stdout.strip()!r} {call.stderr[-200:]!r}"


def net_abstract_unix_socket() -> tuple[bool, str]:
    return _net(
        "unix",
        lambda address: (
            "import ctypes, socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.connect({address!r})\ns.sendall(b'leak')\nprint('SENT')"
        ),
    )


def net_unix_socket_file() -> tuple[bool, str]:
    """A unix socket file anyone may connect to (as D-Bus's or an X server's are), outside its folder."""
    with tempfile.TemporaryDirectory() as mine:
        os.chmod(mine, 0o777)
        path = os.path.join(mine, "service.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        os.chmod(path, 0o777)
        server.listen()
        server.setblocking(False)
        code = f"""
import ctypes, struct
libc = ctypes.CDLL(None)
fd = libc.socket(1, 1, 0)  # AF_UNIX, SOCK_STREAM, without the audit hook seeing it
addr = struct.pack("<H108s", 1, {path.encode()!r})
if libc.connect(fd, addr, len(addr)) == 0 and libc.send(fd, b"leak", 4, 0) == 4:
    print("SENT")
"""
        call = tool(code)
        hits = []
        with contextlib.suppress(BlockingIOError):
            while True:
                hits.append(server.accept())
        server.close()
    return not hits and "SENT" not in call.stdout, f"{len(hits)} connection(s) reached the socket"


def _forkbomb(code: str) -> tuple[bool, str]:
    before = _pids()
    ticks, stop = [], threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.05)

    t = threading.Thread(target=heartbeat, daemon=True)
    t.start()
    call = tool(code, timeout=3)
    stop.set()
    t.join()
    gap = max(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    left = _after(before)
    ok = call.seconds < 3 + SLACK and not left and gap < 2.0
    return ok, f"returned after {call.seconds:.1f}s, longest stall here {gap:.2f}s, {len(left)} process(es) left"


def fork_bomb_os_fork() -> tuple[bool, str]:
    return _forkbomb("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")


def fork_bomb_subprocess() -> tuple[bool, str]:
    return _forkbomb(
        "import subprocess, sys\nwhile True:\n    try:\n"
        f"        subprocess.Popen([sys.executable, '-c', 'while True: pass', {MARK!r}])\n"
        "    except OSError:\n        pass"
    )


def memory_bomb() -> tuple[bool, str]:
    call = tool("x = []\nwhile True:\n    x.append(bytearray(64 << 20))\n    print(len(x), flush=True)")
    most = max((int(n) for n in call.stdout.split() if n.isdigit()), default=0)
    return call.returncode != 0 and most * 64 <= 1024, f"reached {most * 64} MiB before {call.stderr[-80:]!r}"


@contextlib.contextmanager
def _secret_in_environ():
    token = "s3cr3t-" + secrets.token_hex(8)
    os.environ["ASTUNER_ESCAPE_SECRET"] = token
    try:
        yield token
    finally:
        del os.environ["ASTUNER_ESCAPE_SECRET"]


def _reads_no_secret(code: str) -> tuple[bool, str]:
    with _secret_in_environ() as token:
        call = tool(code)
    leaked = token in call.stdout or token in call.stderr
    return not leaked, ("the secret leaked: " if leaked else "no secret; ") + repr((call.stdout + call.stderr)[-160:])


def env_os_environ() -> tuple[bool, str]:
    return _reads_no_secret("import os\nprint(dict(os.environ))")


def env_proc_self_environ() -> tuple[bool, str]:
    return _reads_no_secret("print(open('/proc/self/environ', 'rb').read())")


def env_proc_parent_environ() -> tuple[bool, str]:
    """/proc/<pid>/environ shows the environment a process started with, so the tool runs here from a
    process started with the secret in it (as a trainer started with API keys would be)."""
    code = """
import os
pid = os.getppid()
while pid > 1:  # the parent, its parent, ... up to init
    try:
        print(open(f"/proc/{pid}/environ", "rb").read())
    except OSError as e:
        print(pid, e)
    try:
        pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except OSError:
        break
"""
    token = "s3cr3t-" + secrets.token_hex(8)
    runner = (
        "import asyncio, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from astuner.tool import execute_python_code\n"
        f"print(asyncio.run(execute_python_code({code!r})).content[0]['text'])"
    )
    env = {**os.environ, "ASTUNER_ESCAPE_SECRET": token}
    r = subprocess.run([sys.executable, "-c", runner], env=env, capture_output=True, text=True, timeout=120)
    probe = subprocess.run(  # the check can fail: a process started so shows the secret
        [sys.executable, "-c", "print(open('/proc/self/environ', 'rb').read())"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert token in probe.stdout
    leaked = token in r.stdout or token in r.stderr
    return not leaked and "<returncode>" in r.stdout, ("the secret leaked: " if leaked else "") + repr(r.stdout[-160:])


def env_proc_all_environ() -> tuple[bool, str]:
    """Every /proc/<pid>/environ, while a process of ours that started with the secret runs."""
    code = """
import os
try:
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
except OSError as e:
    pids = []
    print(e)
for pid in ["1", "{holder}"] + pids:
    try:
        print(open(f"/proc/{{pid}}/environ", "rb").read())
    except OSError:
        pass
"""
    with _secret_in_environ() as token:
        holder = subprocess.Popen(["sleep", "60"], env={**os.environ, "ASTUNER_ESCAPE_SECRET": token})
        try:
            call = tool(code.format(holder=holder.pid))
        finally:
            holder.kill()
            holder.wait()
    leaked = token in call.stdout or token in call.stderr
    return not leaked, ("the secret leaked: " if leaked else "no secret; ") + repr((call.stdout + call.stderr)[-160:])


def read_secret_files() -> tuple[bool, str]:
    token = "s3cr3t-" + secrets.token_hex(8)
    home = Path(os.path.expanduser("~"))
    name = ".escape-secret-" + secrets.token_hex(6)  # the path is printed back in errors: no token in it
    paths = [REPO / name, home / name]
    for p in paths:
        p.write_text(token)
    try:
        code = "\n".join(f"try:\n    print(open({str(p)!r}).read())\nexcept OSError as e:\n    print(e)" for p in paths)
        call = tool(code)
    finally:
        for p in paths:
            p.unlink()
    return token not in call.stdout, repr(call.stdout[-200:])


def _writes_nothing(targets: list[Path], code: str) -> tuple[bool, str]:
    call = tool(code)
    made = [str(p) for p in targets if p.exists()]
    for p in made:
        Path(p).unlink()
    return not made, f"created: {made}" if made else repr(call.stdout[-200:])


def write_outside_folder() -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as mine:
        os.chmod(mine, 0o777)  # even a folder anyone may write to
        name = "escape-" + secrets.token_hex(6)
        targets = [Path(mine) / name, Path(tempfile.gettempdir()) / name, REPO / name, Path("/dev/shm") / name]
        code = "\n".join(
            f"try:\n    open({str(p)!r}, 'w').write('x')\nexcept OSError as e:\n    print(e)" for p in targets
        )
        return _writes_nothing(targets, code)


def symlink_tricks() -> tuple[bool, str]:
    token = "s3cr3t-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory() as mine:
        os.chmod(mine, 0o777)
        secret = Path(mine) / "secret.txt"
        secret.write_text(token)
        os.chmod(secret, 0o666)
        target = Path(mine) / "written-through-link"
        code = f"""
import os
for make in (lambda: os.symlink({str(secret)!r}, "s"), lambda: os.link({str(secret)!r}, "h"),
             lambda: os.symlink({mine!r}, "d"), lambda: os.symlink("/", "root")):
    try:
        make()
    except OSError as e:
        print(e)
for path in ("s", "h", "root{secret}"):
    try:
        print(open(path).read())
    except OSError as e:
        print(e)
try:
    open("d/written-through-link", "w").write("x")
except OSError as e:
    print(e)
"""
        call = tool(code)
        ok = token not in call.stdout and not target.exists()
    return ok, repr(call.stdout[-240:])


def _signal_parent(code: str) -> tuple[bool, str]:
    got: list[int] = []
    handlers = {}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in (signal.SIGUSR1, signal.SIGURG):
            handlers[sig] = signal.signal(sig, lambda s, f: got.append(s))
    try:
        call = tool(code)
        time.sleep(0.1)
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
    return not got, f"signals received here: {got}; {call.stdout[-160:]!r}"


def kill_parent() -> tuple[bool, str]:
    return _signal_parent(
        "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGUSR1)\nexcept OSError as e:\n    print(e)"
    )


def kill_everything() -> tuple[bool, str]:
    # SIGURG: what kill(-1) reaches shows up here, and every process that gets it by mistake ignores it
    return _signal_parent("import os, signal\ntry:\n    os.kill(-1, signal.SIGURG)\nexcept OSError as e:\n    print(e)")


def kill_parent_group() -> tuple[bool, str]:
    code = """
import os, signal
for pgid in {os.getpgid(os.getppid()) if hasattr(os, "getpgid") else 0, os.getppid()}:
    try:
        os.killpg(pgid, signal.SIGURG)
    except OSError as e:
        print(e)
"""
    return _signal_parent(code)


def ptrace_parent() -> tuple[bool, str]:
    """PTRACE_SEIZE (does not stop us if it works) of the parent, and a read of its memory."""
    code = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
ppid = os.getppid()
if libc.ptrace(0x4206, ppid, None, None) == 0:  # PTRACE_SEIZE
    print("SEIZED")
    time.sleep(0.5)
try:
    with open(f"/proc/{ppid}/maps") as maps, open(f"/proc/{ppid}/mem", "rb") as mem:
        lo = int(next(maps).split("-")[0], 16)
        mem.seek(lo)
        print("READ", len(mem.read(4096)))
except OSError as e:
    print(e)
"""
    traced, stop = set(), threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with open("/proc/self/status") as f:
                traced.add(next(line for line in f if line.startswith("TracerPid")).split()[1])
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        call = tool(code)
    finally:
        stop.set()
        t.join()
    ok = traced == {"0"} and "SEIZED" not in call.stdout and "READ" not in call.stdout
    return ok, f"TracerPid seen here {sorted(traced)}; {call.stdout[-160:]!r}"


def huge_output() -> tuple[bool, str]:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call = tool("import os\nchunk = b'x' * (1 << 20)\nwhile True:\n    os.write(1, chunk)", timeout=3)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) >> 10
    ok = call.seconds < 3 + SLACK and len(call.stdout) < 64 << 10 and grown < 200
    dropped = re.search(r"stdout truncated: (\d+) bytes dropped", call.stdout)
    sent = f"{int(dropped[1]) >> 20} MiB discarded" if dropped else "nothing discarded"
    return (
        ok,
        f"returned after {call.seconds:.1f}s, {len(call.stdout)} chars kept, {sent}, this process grew {grown} MiB",
    )


def _outlives(code: str) -> tuple[bool, str]:
    before = _pids()
    call = tool(code, timeout=5)
    pids = [int(x) for x in call.stdout.split() if x.isdigit()]
    left = _after(before)
    alive = [p for p in pids if _alive(p)]
    ok = bool(pids) and not alive and not left and call.seconds < 5  # the interpreter exits at once
    return ok, f"returned after {call.seconds:.1f}s, started {pids}, alive after it: {alive}, left: {left}"


def setsid_child_outlives_call() -> tuple[bool, str]:
    return _outlives(
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.05)', {MARK!r}],"
        " start_new_session=True)\n"
        "print(p.pid)"
    )


def double_fork_setsid_daemon() -> tuple[bool, str]:
    code = f"""
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        os.execv(sys.executable, [sys.executable, "-c", "import time\\nwhile True: time.sleep(0.05)", {MARK!r}])
    os._exit(0)
print(os.read(r, 20).decode())
"""
    return _outlives(code)


def timeout_with_setsid_children() -> tuple[bool, str]:
    before = _pids()
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.05)', {MARK!r}],"
        " start_new_session=True)\nprint(p.pid, flush=True)\nwhile True: pass"
    )
    call = tool(code, timeout=2)
    left = _after(before)
    ok = call.seconds < 2 + SLACK and not left
    return ok, f"returned after {call.seconds:.1f}s, left: {left}"


def giant_file() -> tuple[bool, str]:
    code = """
import os, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # turn the kill into EFBIG and keep going
chunk = b"x" * (1 << 20)
with open("big", "wb") as f:
    try:
        for _ in range(4096):
            f.write(chunk)
    except OSError as e:
        print(e)
print("SIZE", os.path.getsize("big"))
"""
    free = shutil.disk_usage(tempfile.gettempdir()).free
    call = tool(code, timeout=30)
    size = int(call.stdout.split("SIZE")[-1]) if "SIZE" in call.stdout else -1
    lost = (free - shutil.disk_usage(tempfile.gettempdir()).free) >> 20
    return 0 <= size <= 64 << 20 and lost < 256, f"file reached {size >> 20} MiB; {call.stdout[:80]!r}"


def disk_fill_many_files() -> tuple[bool, str]:
    code = """
import os
chunk, total = b"x" * (1 << 20), 0
try:
    for i in range(2048):  # 2 GiB in files just under the size limit
        with open(f"f{i}", "wb") as f:
            for _ in range(32):
                f.write(chunk)
                total += len(chunk)
except OSError as e:
    print(e)
print("TOTAL", total)
"""
    call = tool(code, timeout=30)
    total = int(call.stdout.split("TOTAL")[-1]) if "TOTAL" in call.stdout else -1
    return 0 <= total <= 512 << 20, f"wrote {total >> 20} MiB in total"


def exhaust_file_descriptors() -> tuple[bool, str]:
    code = """
import os, resource
for limit in ((1 << 20, 1 << 20), (4096, 4096)):
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, limit)
    except (OSError, ValueError) as e:
        print(e)
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    print(e)
print("FDS", len(fds))
"""
    call = tool(code)
    n = int(call.stdout.split("FDS")[-1]) if "FDS" in call.stdout else -1
    with open(os.devnull) as f:  # and this side still opens files
        f.read()
    return 0 < n <= 256, f"opened {n} descriptors"


def raise_rlimits_back() -> tuple[bool, str]:
    code = """
import resource
for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE"):
    r = getattr(resource, name)
    try:
        resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("RAISED", name)
    except (OSError, ValueError) as e:
        print(name, e)
try:
    x = bytearray(3 << 30)
    print("ALLOCATED 3 GiB")
except MemoryError:
    print("MemoryError")
"""
    call = tool(code)
    return "RAISED" not in call.stdout and "ALLOCATED" not in call.stdout, repr(call.stdout[-200:])


def cpu_spin_in_children() -> tuple[bool, str]:
    before = _pids()
    call = tool(
        "import os\nfor _ in range(8):\n    if os.fork() == 0:\n        os.setsid()\n        while True: pass\n"
        "while True: pass",
        timeout=2,
    )
    left = _after(before)
    return call.seconds < 2 + SLACK and not left, f"returned after {call.seconds:.1f}s, left: {left}"


@dataclass(frozen=True)
class Attempt:
    name: str
    run: Callable[[], tuple[bool, str]]


ATTEMPTS = [
    Attempt(f.__name__, f)
    for f in (
        net_tcp_connect,
        net_tcp_via_ctypes,
        net_subprocess_python,
        net_subprocess_curl,
        net_udp_via_ctypes,
        net_dns,
        net_raw_socket,
        net_abstract_unix_socket,
        net_unix_socket_file,
        fork_bomb_os_fork,
        fork_bomb_subprocess,
        memory_bomb,
        env_os_environ,
        env_proc_self_environ,
        env_proc_parent_environ,
        env_proc_all_environ,
        read_secret_files,
        write_outside_folder,
        symlink_tricks,
        kill_parent,
        kill_everything,
        kill_parent_group,
        ptrace_parent,
        huge_output,
        setsid_child_outlives_call,
        double_fork_setsid_daemon,
        timeout_with_setsid_children,
        cpu_spin_in_children,
        giant_file,
        disk_fill_many_files,
        exhaust_file_descriptors,
        raise_rlimits_back,
    )
]


def layers() -> tuple[str, ...]:
    """The isolation layers the tool puts in place on this machine."""
    return asyncio.run(run_sandboxed("pass", 10)).isolation


def run_attempts() -> list[tuple[str, bool, str]]:
    """Run every attempt: (name, contained, detail)."""
    results = []
    for attempt in ATTEMPTS:
        try:
            contained, detail = attempt.run()
        except Exception as e:  # an attempt that breaks the harness is not counted as contained
            contained, detail = False, f"{type(e).__name__}: {e}"
        results.append((attempt.name, contained, detail))
    return results


def main() -> None:
    results = run_attempts()
    held = sum(ok for _, ok, _ in results)
    print(f"sandbox escapes: contained {held}/{len(results)} (layers: {', '.join(layers())})")
    for name, ok, detail in results:
        if not ok:
            print(f"  ESCAPED {name}: {detail}")


if __name__ == "__main__":
    main()
