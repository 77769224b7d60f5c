"""The sandboxed python tool: each promised limit, tried for real."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

from agentscope.tool import Toolkit

from astuner.tool import SandboxLimits, execute_python_code, run_sandboxed


def run(code, timeout=10, limits=None):
    return asyncio.run(run_sandboxed(code, timeout, limits or SandboxLimits()))


def test_runs_code_and_captures_output():
    r = run("import sys; print(6 * 7); print('warn', file=sys.stderr)")
    assert (r.returncode, r.stdout, r.stderr.strip(), r.timed_out) == (0, "42\n", "warn", False)


def test_timeout_kills_child_processes_too():
    code = "import subprocess, time\np = subprocess.Popen(['sleep', '120'])\nprint(p.pid, flush=True)\ntime.sleep(120)"
    start = time.monotonic()
    r = run(code, timeout=2)
    assert r.timed_out and "ran longer than 2 seconds" in r.stderr
    assert time.monotonic() - start < 10
    child = int(r.stdout.split()[0])
    time.sleep(0.2)
    assert not _running(child), "the child process outlived the timeout"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
    except FileNotFoundError:
        return False
    return "zombie" not in state


def test_model_timeout_is_capped():
    r = run("import time; time.sleep(30)", timeout=10_000, limits=SandboxLimits(max_wall_seconds=1))
    assert r.timed_out


def test_memory_bomb_is_contained():
    r = run("x = bytearray(8 << 30)\nprint('allocated')")
    assert r.returncode != 0 and "MemoryError" in r.stderr and "allocated" not in r.stdout


def test_cpu_limit():
    r = run("while True: pass", timeout=30, limits=SandboxLimits(cpu_seconds=1, max_wall_seconds=30))
    assert r.returncode != 0 and not r.timed_out  # killed by RLIMIT_CPU (SIGXCPU), not by the wall clock


def test_no_network():
    hits = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(5)
    port = server.getsockname()[1]

    def accept():
        try:
            conn, _ = server.accept()
            hits.append(conn.recv(100))
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    code = (
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\ns.sendall(b'leak')\n"
        "print('sent')"
    )
    r = run(code)
    # a child process (not the sandboxed interpreter) must not reach the network either
    r2 = run(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {code!r}])")
    server.close()
    t.join()
    assert "sent" not in r.stdout and "sent" not in r2.stdout
    assert hits == []


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_SECRET", "s3cr3t-value")
    r = run("import os; print(dict(os.environ))")
    assert "s3cr3t-value" not in r.stdout and "ASTUNER_TEST_SECRET" not in r.stdout


def test_fresh_working_folder_removed_afterwards():
    r = run("import os; open('f.txt', 'w').write('x'); print(os.getcwd())")
    folder = r.stdout.strip()
    assert "astuner-pytool-" in folder and not os.path.exists(folder)


def test_ten_megabytes_of_output_are_capped_without_hanging():
    start = time.monotonic()
    r = run("import sys\nfor _ in range(10): sys.stdout.write('x' * (1 << 20))", timeout=20)
    assert time.monotonic() - start < 10 and r.returncode == 0
    assert len(r.stdout) < 20_000 and "stdout truncated" in r.stdout


def test_drops_into_an_agentscope_toolkit():
    toolkit = Toolkit()
    toolkit.register_tool_function(execute_python_code)
    (schema,) = toolkit.get_json_schemas()
    assert schema["function"]["name"] == "execute_python_code"
    assert set(schema["function"]["parameters"]["properties"]) == {"code", "timeout"}
    response = asyncio.run(execute_python_code("print(1 + 1)"))
    assert response.content[0]["text"] == "<returncode>0</returncode><stdout>2\n</stdout><stderr></stderr>"
