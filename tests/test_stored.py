import json

import jax
import optax

from sulib._stored import environment, write_stored_run


def test_write_stored_run_records_fields_command_and_versions(tmp_path):
    out = tmp_path / "run.json"
    write_stored_run(str(out), "sulib.example", ["train", str(out)], config={"seed": 1}, losses=[0.5])
    record = json.loads(out.read_text())
    assert record["config"] == {"seed": 1} and record["losses"] == [0.5]
    assert record["command"] == f"python -m sulib.example train {out}"
    assert record["environment"] == environment()
    # chapters compare a re-run exactly only under the run's own jax and optax (lion_embeddings)
    assert f"jax {jax.__version__}, optax {optax.__version__}" in record["environment"]
    assert out.read_text().endswith("}\n")
