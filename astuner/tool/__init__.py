"""Tools for workflows: ``execute_python_code`` (sandboxed; same call shape as AgentScope's)."""

from astuner.tool.python_sandbox import SandboxLimits, execute_python_code, run_sandboxed

__all__ = ["SandboxLimits", "execute_python_code", "run_sandboxed"]
