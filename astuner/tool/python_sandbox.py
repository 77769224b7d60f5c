"""A python-execution tool for agents that is safe to run thousands of times during RL.

--8<-- [start:layers] (docs/quality/security.md includes this part)
AgentScope's ``execute_python_code`` runs a plain subprocess with the whole environment (API keys
included), open network, a model-chosen timeout that a child process defeats, and it hangs on more
than 64 KiB of output. During RL a policy explores: it will eventually print forever, fork, allocate
without bound, read secrets, write anywhere or kill its parent. ``execute_python_code`` here has the
same call shape (so it drops into a ``Toolkit``) and enforces, in layers (each result lists the layers
that were really active in ``SandboxResult.isolation``; a missing layer is logged once, never assumed):

- ``wall-timeout``: the model's timeout, capped, then the whole process group is killed; output is
  capped per stream (the rest is drained and discarded, so nothing blocks). Always.
- ``rlimits``: CPU time, address space, file size, open files, no core dumps (``setrlimit``, hard
  limits, so the code cannot raise them back). Always.
- ``env``: a scrubbed environment (no API keys), HOME/TMPDIR in a fresh temporary folder removed
  afterwards. Always.
- ``netns``: a fresh network namespace (no interface but a down loopback). Needs root or unprivileged
  user namespaces. ``audit-hook``: an interpreter hook refusing sockets (code can bypass it with
  ctypes; it only gives a clear error message).
- ``landlock-fs`` / ``landlock-net`` / ``landlock-scope`` (Linux >= 5.13 / 6.7 / 6.12, Landlock ABI
  1 / 4 / 6; unprivileged, with ``no-new-privs``): reads only of the system and Python folders
  (``/usr``, ``/lib*``, ``/bin``, a few ``/etc`` files, ``sys.prefix``/``sys.base_prefix``,
  site-packages, ``/dev/null``/``urandom``...), writes only in the working folder, so ``/proc`` (other
  processes' environ and memory), the project, ``$HOME`` and the rest of ``/tmp`` are out of reach; no
  TCP bind/connect; no signals to, ptrace of, or abstract unix sockets of processes outside the
  sandbox (the parent cannot be killed).
- As root only: ``uid``: a fresh random uid/gid per execution (no supplementary groups, no
  capabilities left), so ``nproc`` (RLIMIT_NPROC, ``SandboxLimits.max_processes``) binds and a fork
  bomb is contained, and ``reaper``: after the call every process of that uid is killed
  (``kill(-1)`` as that uid), including children that ``setsid()``'d out of the process group.
  ``mountns``: a private mount namespace where the working folder is a size-capped tmpfs
  (``SandboxLimits.disk_bytes``, ``tmpfs-workdir``) and where shared folders (``/tmp``, ``/run``,
  ``/dev/shm``, ``/home``, ``/root``...) are empty (``hidden:...``), so unix socket files outside
  the folder (D-Bus, X11, services of other users) cannot be reached; interpreter folders inside
  them, or behind a folder the fresh uid could not enter (e.g. a pyenv Python under a 0700
  ``/root``), are bound back at the same path. Where the uid cannot be switched (the interpreter is
  not readable for others), the child stays uid 0 with every capability dropped (``caps-dropped``).

Weaker for non-root users (most cluster users): no uid switch, so RLIMIT_NPROC is set to the user's
current task count plus ``max_processes`` (it binds, but counts the user's other processes too); a
child that calls ``setsid()`` escapes the process-group kill and survives the call (a sleeping one
indefinitely, a busy one until its CPU limit; the call itself returns); there is no disk quota beyond
the per-file size limit; unix socket files that the user may connect to (anywhere outside the
folder) stay reachable; and the filesystem, signal and ptrace protection rests on Landlock alone (on
kernels without Landlock, same-uid processes can read ``/proc/<parent>/environ``, write wherever the
user can and signal the parent). Without a network namespace (no user namespaces), UDP is only
refused by the audit hook.

Not contained in any mode: memory summed over processes. RLIMIT_AS binds each process, so
``max_processes`` processes may together use up to ``max_processes * memory_bytes`` (a cgroup memory
limit would bound the sum; astuner does not create cgroups). Nor does anything stop the code from
creating user namespaces (more kernel surface, no more reach: it keeps its uid, limits and Landlock
domain).
--8<-- [end:layers]
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import site
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

from agentscope.message import TextBlock
from agentscope.tool import ToolResponse

logger = logging.getLogger(__name__)

# Runs inside the child before the user's code: limits, namespaces, Landlock, uid switch, then exec.
# It reports the layers it put in place on an inherited pipe, closed before the user's code runs.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, socket, stat, sys
cfg = json.loads(sys.argv[1])
code = open("main.py", encoding="utf-8").read()
layers = ["rlimits"]
for name, value in (("RLIMIT_AS", cfg["memory_bytes"]), ("RLIMIT_CPU", cfg["cpu_seconds"]),
                    ("RLIMIT_FSIZE", cfg["file_bytes"]), ("RLIMIT_NOFILE", 256), ("RLIMIT_CORE", 0)):
    resource.setrlimit(getattr(resource, name), (value, value))
if cfg["nproc"]:
    resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"]))
libc = ctypes.CDLL(None, use_errno=True)
def sc(*args):
    return libc.syscall(*[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
uid, gid = cfg["uid"], cfg["gid"]
CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWNS = 0x40000000, 0x10000000, 0x20000
mountns = uid is not None and libc.unshare(CLONE_NEWNET | CLONE_NEWNS) == 0
if mountns or libc.unshare(CLONE_NEWNET) == 0 or libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
    layers.append("netns")
if mountns:
    layers.append("mountns")
    def mount(src, target, fstype, flags, data):
        enc = lambda s: None if s is None else s.encode()
        if libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
            raise OSError(ctypes.get_errno(), "mount " + target)
    MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 0x1000, 0x4000, 0x40000
    try:
        mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        for top, roots in cfg["overmounts"]:
            fds = [os.open(r, os.O_PATH | os.O_CLOEXEC) for r in roots]
            mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
            for r, fd in zip(roots, fds):
                os.makedirs(r, mode=0o755, exist_ok=True)
                mount(f"/proc/self/fd/{fd}", r, None, MS_BIND | MS_REC, None)
                os.close(fd)
        if cfg["overmounts"]:
            layers.append("hidden:" + ":".join(top for top, _ in cfg["overmounts"]))
    except OSError as e:
        print(f"[sandbox] cannot reach the interpreter as another uid ({e}); staying uid 0 without capabilities",
              file=sys.stderr)
        uid = None
    try:
        wd = os.getcwd()
        os.makedirs(wd, mode=0o755, exist_ok=True)  # where its folder was hidden (/tmp)
        opts = f"mode=700,size={cfg['disk_bytes']}" + (f",uid={uid},gid={gid}" if uid is not None else "")
        mount("tmpfs", wd, "tmpfs", MS_NOSUID | MS_NODEV, opts)
        os.chdir(wd)
        with open("main.py", "w", encoding="utf-8") as f:
            f.write(code)  # for tracebacks
        if uid is not None:
            os.chown("main.py", uid, gid)
        layers.append("tmpfs-workdir")
    except OSError:
        pass
if uid is not None and not mountns and any(roots for _, roots in cfg["overmounts"]):
    uid = None  # no mount namespace (no CAP_SYS_ADMIN): the interpreter is out of the fresh uid's reach
if uid is None and cfg["uid"] is not None:
    os.chown(".", 0, 0)  # the parent gave the folder to the fresh uid
if libc.prctl(38, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0:
    layers.append("no-new-privs")  # PR_SET_NO_NEW_PRIVS: no setuid binaries, and Landlock may be used
abi = sc(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
if abi >= 1 and "no-new-privs" in layers:
    fs = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net = 3 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP, no rule: all denied
    scoped = 3 if abi >= 6 else 0  # ABSTRACT_UNIX_SOCKET | SIGNAL
    attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
    ruleset = sc(444, ctypes.byref(attr), 8 if abi < 4 else 16 if abi < 6 else 24, 0)
    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]
    FILE_RIGHTS = 1 | 2 | 4 | (1 << 14) | (1 << 15)  # EXECUTE, WRITE_FILE, READ_FILE, TRUNCATE, IOCTL_DEV
    def allow(path, access):
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return True
        try:
            access &= fs if stat.S_ISDIR(os.fstat(fd).st_mode) else fs & FILE_RIGHTS
            return sc(445, ruleset, 1, ctypes.byref(PathBeneath(access, fd)), 0) == 0
        finally:
            os.close(fd)
    READ = 1 | 4 | 8  # EXECUTE, READ_FILE, READ_DIR
    ok = ruleset >= 0 and all([allow(p, READ) for p in cfg["read"]] + [allow(p, 2 | 4 | 1 << 15) for p in cfg["dev"]])
    if ok and allow(".", fs) and sc(446, ruleset, 0) == 0:
        layers += ["landlock-fs"] + ["landlock-net"] * bool(net) + ["landlock-scope"] * bool(scoped)
if uid is not None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    layers += ["uid", "nproc"]
elif os.geteuid() == 0:
    for cap in range(64):
        libc.prctl(24, ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
    if libc.capset(ctypes.byref(header), ctypes.byref(data)) == 0:
        layers.append("caps-dropped")
elif cfg["nproc"]:
    layers.append("nproc")
def _deny(event, args):
    if event == "socket.__new__" and args[1] != socket.AF_UNIX:
        raise PermissionError("network access is disabled in this sandbox")
    if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
        raise PermissionError("network access is disabled in this sandbox")
sys.addaudithook(_deny)
layers.append("audit-hook")
os.write(cfg["report_fd"], ",".join(layers).encode())
os.close(cfg["report_fd"])
del cfg, libc, sc, uid, gid, layers
sys.argv = ["main.py"]
exec(compile(code, "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one execution.

    Attributes:
        max_wall_seconds: cap on the model's ``timeout`` argument.
        cpu_seconds: CPU time of each process (RLIMIT_CPU).
        memory_bytes: address space of each process (RLIMIT_AS).
        file_bytes: largest file it may write (RLIMIT_FSIZE).
        output_bytes: stdout and stderr kept, each.
        max_processes: processes and threads at once (RLIMIT_NPROC; see the module docstring).
        disk_bytes: size of the working folder when it is a tmpfs (root only).
    """

    max_wall_seconds: float = 30.0
    cpu_seconds: int = 30
    memory_bytes: int = 1 << 30
    file_bytes: int = 64 << 20
    output_bytes: int = 16 << 10
    max_processes: int = 64
    disk_bytes: int = 256 << 20


DEFAULT_LIMITS = SandboxLimits()
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_SYSTEM_READ = ["/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"]
_ETC_READ = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "resolv.conf",
    "gai.conf",
    "os-release",
    "mime.types",
    "ssl",
    "ca-certificates",
    "alternatives",
    "matplotlibrc",
]
_HIDE = ["/tmp", "/var/tmp", "/run", "/dev/shm", "/home", "/root", "/mnt", "/media", "/srv"]
_DEV_RW = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
_UID_RANGE = (1 << 30, (1 << 31) - 2)  # fresh ids per execution, far above any real account


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    isolation: tuple[str, ...] = ()  # the layers that were active (see the module docstring)


@dataclass(frozen=True)
class _Host:
    read: tuple[str, ...]
    overmounts: tuple[tuple[str, tuple[str, ...]], ...]  # (folder to hide, interpreter folders bound back)
    switch_uid: bool


def _python_roots() -> list[str]:
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    for scheme in {sysconfig.get_default_scheme(), "posix_prefix"}:
        paths.update(
            v for k, v in sysconfig.get_paths(scheme).items() if k in ("stdlib", "platstdlib", "purelib", "platlib")
        )
    paths.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    return [p for p in paths if p and os.path.isdir(p)]


def _outermost(paths: list[str]) -> list[str]:
    real = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    return [p for p in real if p != "/" and not any(p.startswith(q.rstrip("/") + "/") for q in real if q != p)]


def _first_untraversable(path: str) -> str | None:
    """The outermost folder on the way to ``path`` that a stranger uid cannot enter, if any."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        folder = "/" + "/".join(parts[:i])
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@functools.lru_cache(maxsize=1)
def _host() -> _Host:
    python = _outermost(_python_roots())
    read = _outermost(_SYSTEM_READ + [os.path.join("/etc", f) for f in _ETC_READ] + python)
    switch_uid = os.geteuid() == 0
    tops = []
    for root in python:
        mode = os.stat(root).st_mode
        if not (mode & stat.S_IROTH and mode & stat.S_IXOTH):
            switch_uid = False
        if (top := _first_untraversable(root)) is not None:
            tops.append(top)
    if _first_untraversable(os.path.join(tempfile.gettempdir(), "x")) or any(
        _first_untraversable(p) for p in _outermost(_SYSTEM_READ)
    ):
        switch_uid = False
    # shared folders where other programs keep files and unix sockets: empty in the sandbox
    tops += [p for p in map(os.path.realpath, _HIDE) if os.path.isdir(p) and not any(_under(p, r) for r in read)]
    overmounts = tuple((top, tuple(r for r in read if _under(r, top))) for top in _outermost(tops))
    return _Host(tuple(read), overmounts, switch_uid)


def _user_tasks() -> int:
    """Processes and threads of this real uid (what RLIMIT_NPROC counts), for non-root users."""
    uid, count = str(os.getuid()), 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError, StopIteration):
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if line.startswith(("Uid:", "Threads:")))
                if fields["Uid"].split()[0] == uid:
                    count += int(fields["Threads"])
    return count


_logged_layers: set[tuple[str, ...]] = set()


def _log_layers(layers: tuple[str, ...]) -> None:
    if layers in _logged_layers:
        return
    _logged_layers.add(layers)
    missing = [
        x for x in ("netns", "landlock-fs", "landlock-net", "landlock-scope", "nproc", "reaper") if x not in layers
    ]
    logger.info(
        "python sandbox layers: %s%s",
        ", ".join(layers),
        f" (not available here: {', '.join(missing)})" if missing else "",
    )


class _Output:
    """What a stream delivered: the first ``cap`` bytes, and how many more were discarded."""

    def __init__(self, cap: int):
        self.cap, self.kept, self.dropped = cap, bytearray(), 0

    def text(self, name: str) -> str:
        note = f"\n[{name} truncated: {self.dropped} bytes dropped]" if self.dropped else ""
        return self.kept.decode("utf-8", "replace") + note


async def _drain(stream: asyncio.StreamReader, into: _Output) -> None:
    while chunk := await stream.read(65536):
        room = into.cap - len(into.kept)
        into.kept += chunk[:room]
        into.dropped += max(0, len(chunk) - room)


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Tells when the interpreter itself exits: before 3.12, ``Process.wait()`` also waits for the
    pipes to close, which a child that left the process group may hold open as long as it likes."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop):
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _reap_uid(uid: int, gid: int) -> None:
    """Kill every process of ``uid``: as that uid, ``kill(-1, SIGKILL)`` reaches exactly those.

    One pass is atomic against fork (a task being killed cannot complete a fork); a second one is cheap.
    Synchronous on purpose: ~1.5 ms, where an asyncio subprocess costs ~10 ms (child watcher).
    """
    subprocess.run(
        ["/bin/sh", "-c", "kill -9 -1; kill -9 -1"],
        user=uid,
        group=gid,
        extra_groups=[],
        env={},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


async def run_sandboxed(code: str, timeout: float, limits: SandboxLimits = DEFAULT_LIMITS) -> SandboxResult:
    """Run ``code`` under ``limits`` with a wall timeout of ``min(timeout, limits.max_wall_seconds)``."""
    wall = max(0.1, min(float(timeout), limits.max_wall_seconds))
    host = _host()
    uid = gid = None
    if host.switch_uid:
        uid = gid = secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0]) + _UID_RANGE[0]
        nproc = limits.max_processes
    else:
        nproc = 0 if os.geteuid() == 0 else _user_tasks() + limits.max_processes  # RLIMIT_NPROC never binds uid 0
    workdir = tempfile.mkdtemp(prefix="astuner-pytool-")
    report_r, report_w = os.pipe()
    try:
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        if uid is not None:
            os.chown(workdir, uid, gid)
        cfg = {
            **asdict(limits),
            "nproc": nproc,
            "uid": uid,
            "gid": gid,
            "report_fd": report_w,
            "read": host.read,
            "dev": _DEV_RW,
            "overmounts": host.overmounts,
        }
        env = {**_ENV, "HOME": workdir, "TMPDIR": workdir}
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(limit=1 << 16, loop=loop),
                sys.executable,
                "-I",
                "-c",
                _BOOTSTRAP,
                json.dumps(cfg),
                cwd=workdir,
                env=env,
                pass_fds=(report_w,),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        finally:
            os.close(report_w)
        pid = transport.get_pid()
        out, err = _Output(limits.output_bytes), _Output(limits.output_bytes)
        assert protocol.stdout is not None and protocol.stderr is not None
        readers = asyncio.gather(_drain(protocol.stdout, out), _drain(protocol.stderr, err))
        timed_out = False
        try:
            await asyncio.wait_for(protocol.exited.wait(), wall)
        except asyncio.TimeoutError:
            timed_out = True
        finally:
            _kill_group(pid)  # children outlive the interpreter otherwise, and hold the pipes open
            if uid is not None:
                _reap_uid(uid, gid)  # and those that left the process group (setsid)
            await protocol.exited.wait()
            with contextlib.suppress(asyncio.TimeoutError):
                # without the uid layer, a child that left the group may still hold the pipes: stop reading
                await asyncio.wait_for(readers, 1.0)
            transport.close()
        returncode = transport.get_returncode()
        os.set_blocking(report_r, False)
        report = ""
        with contextlib.suppress(BlockingIOError):
            report = os.read(report_r, 65536).decode()
        layers = ["wall-timeout", "env"] + [x for x in report.split(",") if x]
        if uid is not None and "uid" in layers:
            layers.append("reaper")
        isolation = tuple(layers)
        _log_layers(isolation)
        stdout, stderr = out.text("stdout"), err.text("stderr")
        if timed_out:
            stderr += f"\nTimeoutError: the code ran longer than {wall:g} seconds and was killed"
        return SandboxResult(None if timed_out else returncode, stdout, stderr, timed_out, isolation)
    finally:
        os.close(report_r)
        shutil.rmtree(workdir, ignore_errors=True)


async def execute_python_code(code: str, timeout: float = 300, **kwargs: Any) -> ToolResponse:
    """Execute the given python code in a temp file and capture the return
    code, standard output and error. Note you must `print` the output to get
    the result, and the tmp file will be removed right after the execution.

    Args:
        code (`str`):
            The Python code to be executed.
        timeout (`float`, defaults to `300`):
            The maximum time (in seconds) allowed for the code to run.

    Returns:
        `ToolResponse`:
            The response containing the return code, standard output, and
            standard error of the executed code.
    """
    result = await run_sandboxed(code, timeout)
    text = (
        f"<returncode>{result.returncode if result.returncode is not None else -1}</returncode>"
        f"<stdout>{result.stdout}</stdout><stderr>{result.stderr}</stderr>"
    )
    return ToolResponse(content=[TextBlock(type="text", text=text)])
