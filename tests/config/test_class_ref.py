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
