"""module->Class and file.py->Class references: where they are searched and what errors say."""

from __future__ import annotations

from pathlib import Path

import pytest

from astuner.config.class_ref import ClassRefError, parse_class_ref, resolve_class
from astuner.workflow.base import Workflow

SRC = "from astuner import Workflow\n\nclass MyFlow(Workflow):\n    async def execute(self, t, m):\n        pass\n"


@pytest.fixture
def project(tmp_path):
    pkg = tmp_path / "proj" / "agents"
    pkg.mkdir(parents=True)
    (pkg / "flow_impl_a.py").write_text(SRC)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


def test_dotted_reference_from_the_yaml_folder(project):
    cls = resolve_class("flow_impl_a->MyFlow", project / "proj" / "agents", project / "elsewhere")
    assert issubclass(cls, Workflow) and cls.__name__ == "MyFlow"


def test_dotted_reference_qualified_from_a_parent_of_the_yaml_folder(project):
    ref = parse_class_ref("proj.agents.flow_impl_a->MyFlow", project / "proj" / "agents", project / "elsewhere")
    assert ref.root == project and ref.module == "proj.agents.flow_impl_a"


def test_file_reference_relative_to_the_yaml_then_cwd(project):
    ref = parse_class_ref("agents/flow_impl_a.py->MyFlow", project / "proj", project / "elsewhere")
    assert ref.root == project / "proj" / "agents" and ref.module == "flow_impl_a"
    ref = parse_class_ref("proj/agents/flow_impl_a.py->MyFlow", project / "elsewhere", project)
    assert ref.root == project / "proj" / "agents"


def test_installed_module_reference():
    cls = resolve_class("astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge", Path("/"), Path("/"))
    assert cls.__name__ == "MathAnswerAsJudge"


def test_missing_module_suggests_the_sibling_file_that_has_the_class(project):
    with pytest.raises(ClassRefError) as e:
        parse_class_ref("proj.agents.workflow->MyFlow", project, project / "elsewhere")
    msg = str(e.value)
    assert "not found (searched" in msg and "did you mean 'proj.agents.flow_impl_a->MyFlow'?" in msg


def test_missing_class_suggests_a_close_name(project):
    with pytest.raises(ClassRefError, match=r"defines no class MyFlw; did you mean 'agents/flow_impl_a.py->MyFlow'"):
        parse_class_ref("agents/flow_impl_a.py->MyFlw", project / "proj", project)


def test_malformed_references(project):
    for bad in ("no_arrow", "mod->", "->Cls", "a b->C", "mod->not-an-id"):
        with pytest.raises(ClassRefError, match="is not"):
            parse_class_ref(bad, project, project)


def test_import_error_inside_user_module_is_one_line(project):
    (project / "broken_mod_x.py").write_text("import does_not_exist_anywhere\nclass A: pass\n")
    with pytest.raises(ClassRefError, match="importing broken_mod_x failed: ModuleNotFoundError"):
        resolve_class("broken_mod_x->A", project, project)


def test_module_name_taken_by_the_standard_library(project):
    (project / "json.py").write_text("class A: pass\n")
    with pytest.raises(ClassRefError, match="the name 'json' is already taken"):
        resolve_class("json.py->A", project, project)


def test_a_same_named_module_in_a_folder_already_on_sys_path_does_not_shadow_the_reference(tmp_path, monkeypatch):
    """Two tutorials each with a ``workflow.py``: the other one's folder went on sys.path first (an earlier load in
    this process) and neither module is imported yet. The reference means the module next to its own YAML."""
    name = _unique(tmp_path, "workflow")
    for folder, cls in (("other", "OtherFlow"), ("mine", "MyFlow")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{name}.py").write_text(f"class {cls}:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mine"))
    monkeypatch.syspath_prepend(str(tmp_path / "other"))  # ahead of "mine"
    cls = resolve_class(f"{name}->MyFlow", tmp_path / "mine", tmp_path)
    assert cls.__name__ == "MyFlow"


# ---- did you mean: the class in a sibling module or file (found by reading source, never importing it) ----------

# A sibling that defines the class but must never run: importing it would write a marker file.
SIBLING = "import pathlib\npathlib.Path(__file__).with_suffix('.ran').touch()\n\nclass {cls}:\n    pass\n"


def _unique(tmp_path, stem: str) -> str:
    """One module name per test: a process imports each module name once (see class_ref)."""
    return f"{stem}_{abs(hash(str(tmp_path)))}"


@pytest.mark.parametrize("cwd_on_sys_path", [False, True], ids=["console-script", "python-m"])
def test_the_seed_tutorials_reference_suggests_its_workflow_module(tmp_path, monkeypatch, cwd_on_sys_path):
    """The seed names ``math_agent.math_agent->MathAgentWorkflow`` for a class in ``math_agent/workflow.py``
    (``astuner --conf math_agent/math_agent.yaml`` from the folder above). Under ``python -m`` the working
    directory is on sys.path, so ``math_agent`` is a namespace package there: that must not count as found."""
    pkg = _unique(tmp_path, "math_agent")
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "workflow.py").write_text(SIBLING.format(cls="MathAgentWorkflow"))
    (tmp_path / pkg / "math_agent.yaml").write_text("astuner: {}\n")
    if cwd_on_sys_path:
        monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ClassRefError) as e:
        resolve_class(f"{pkg}.math_agent->MathAgentWorkflow", tmp_path / pkg, tmp_path)
    msg = str(e.value)
    assert f"module '{pkg}.math_agent' not found (searched" in msg and "\n" not in msg
    assert f"class MathAgentWorkflow is in {tmp_path / pkg / 'workflow.py'}" in msg
    assert f"did you mean '{pkg}.workflow->MathAgentWorkflow'?" in msg
    assert not (tmp_path / pkg / "workflow.ran").exists(), "the sibling was imported to find the class"
    # and the suggestion resolves
    assert resolve_class(f"{pkg}.workflow->MathAgentWorkflow", tmp_path / pkg, tmp_path).__name__ == "MathAgentWorkflow"


def test_module_without_the_class_suggests_the_sibling_that_defines_it(tmp_path):
    pkg = _unique(tmp_path, "agents")
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "main.py").write_text("class Helper:\n    pass\n")
    (tmp_path / pkg / "zflow.py").write_text(SIBLING.format(cls="MyFlow"))
    with pytest.raises(ClassRefError) as e:
        resolve_class(f"{pkg}.main->MyFlow", tmp_path, tmp_path)
    assert f"module {pkg}.main has no class MyFlow; class MyFlow is in" in str(e.value)
    assert f"did you mean '{pkg}.zflow->MyFlow'?" in str(e.value)
    assert not (tmp_path / pkg / "zflow.ran").exists()


def test_missing_submodule_of_a_package_on_sys_path_suggests_its_sibling(tmp_path, monkeypatch):
    """A package found on sys.path (not beside the YAML): the import fails on the module itself."""
    site = tmp_path / "site"
    pkg = _unique(tmp_path, "installed_pkg")
    (site / pkg).mkdir(parents=True)
    (site / pkg / "__init__.py").write_text("")
    (site / pkg / "flows.py").write_text(SIBLING.format(cls="MyFlow"))
    monkeypatch.syspath_prepend(str(site))
    (tmp_path / "here").mkdir()
    with pytest.raises(ClassRefError) as e:
        resolve_class(f"{pkg}.flow->MyFlow", tmp_path / "here", tmp_path / "here")
    assert "ModuleNotFoundError" in str(e.value) and f"did you mean '{pkg}.flows->MyFlow'?" in str(e.value)
    assert not (site / pkg / "flows.ran").exists()


def test_file_without_the_class_suggests_the_sibling_file(project):
    (project / "proj" / "agents" / "helpers.py").write_text("class Helper:\n    pass\n")
    (project / "proj" / "agents" / "zz_other.py").write_text(SIBLING.format(cls="OtherFlow"))
    with pytest.raises(ClassRefError) as e:
        parse_class_ref("agents/helpers.py->OtherFlow", project / "proj", project)
    assert "helpers.py defines no class OtherFlow" in str(e.value)
    assert "did you mean 'agents/zz_other.py->OtherFlow'?" in str(e.value)
    assert not (project / "proj" / "agents" / "zz_other.ran").exists()


def test_missing_file_relative_to_the_cwd_suggests_the_sibling_file(project):
    with pytest.raises(ClassRefError) as e:
        parse_class_ref("proj/agents/flow.py->MyFlow", project / "elsewhere", project)
    assert "file not found (searched" in str(e.value)
    assert "did you mean 'proj/agents/flow_impl_a.py->MyFlow'?" in str(e.value)


def test_an_exact_sibling_beats_a_close_name_in_the_same_file(project):
    (project / "proj" / "agents" / "near.py").write_text("class MyFlows:\n    pass\n")
    with pytest.raises(ClassRefError, match=r"did you mean 'agents/flow_impl_a.py->MyFlow'"):
        parse_class_ref("agents/near.py->MyFlow", project / "proj", project)
