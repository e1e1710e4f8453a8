"""The same run with the same seed on the same machine gives bit-identical metrics, for a JAX
model (JAT) and a PyTorch one (SchNet); metrics.json records what determines the numbers."""

from __future__ import annotations

import json

import pytest

from mlffbench.testing import TINY_SCHNET

COMMON = {"max_configs": 12, "batch_size": 4, "eval_batch_size": 6, "seed": 5, "epochs": 1}
MODELS = {
    "jat": {"layer_dims": [8], "embed_d": 8, "cutoff": 3.0, "readout_dims": [8]},
    "schnet": TINY_SCHNET,
}


def _numbers(metrics: dict, history: list) -> dict:
    """Every error the run reports (the held-out parts and the per-epoch validation)."""
    return {
        "parts": {p: metrics[p] for p in ("val", "test") if p in metrics},
        "history": [{"epoch": r["epoch"], "train": r.get("train"), "val": r.get("val")} for r in history],
        "n_params": metrics["n_params"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("model", ["jat", "schnet"])
def test_same_seed_gives_bit_identical_metrics(model, tmp_path, data_dir):
    from mlffbench.runs.experiment import RunOptions, train_and_evaluate

    seen = []
    for k in range(2):
        options = RunOptions(
            model=model,
            dataset="ean",
            model_params=dict(MODELS[model]),
            train_params=dict(COMMON),
            data_dir=data_dir,
            runs_dir=tmp_path / f"runs{k}",
            tracking=False,
            progress=False,
        )
        run_dir, _ = train_and_evaluate(options)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())
        seen.append((metrics, _numbers(metrics, history)))
    (first, a), (_, b) = seen
    assert a == b  # JSON floats round-trip exactly: equal here means bit-identical
    assert a["parts"]["test"]["force_mae"] > 0
    prov = first["provenance"]
    assert prov["dtype"] == "float32" and prov["cpu"] and prov["cpu_count"] >= 1
    assert prov["backend"] == ("jax" if model == "jat" else "torch")
    if model == "schnet":
        assert int(prov["threads"]["torch_intra_op"]) >= 1
    assert {"numpy", "python"} <= set(first["versions"])
