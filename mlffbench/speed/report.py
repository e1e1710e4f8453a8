"""The outputs of ``mlffbench compare``: rich table, PNG plots, Markdown report, MLflow run.

Units: tables in meV/Å (forces), meV/atom (energies) and GPa (stress); plots label theirs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mlffbench.runs import directory as runs
from mlffbench.runs.tracking import EXPERIMENT, default_tracking_uri, flatten
from mlffbench.training.metrics import GPA

SCORES = {"force_mae": ("force MAE", "meV/Å"), "energy_mae_per_atom": ("energy MAE", "meV/atom")}

PLOTS = {
    "accuracy_vs_speed": "accuracy_vs_speed.png",
    "learning_curves": "force_mae_vs_wall_time.png",
    "parity": "force_parity.png",
}


def _pm(s: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    if not s or s.get("n", 0) == 0:
        return "—"
    if s["n"] == 1:
        return f"{scale * s['mean']:.{digits}f}"
    return f"{scale * s['mean']:.{digits}f} ± {scale * s['std']:.{digits}f}"


def rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main comparison table (shared by the console and Markdown)."""
    part = result["part"]
    header = [
        "model",
        f"F MAE meV/Å ({part})",
        "F RMSE meV/Å",
        "E MAE meV/atom",
        "E RMSE meV/atom",
        "train conf/s (now)",
        "train conf/s (runs)",
        "µs/atom·step (b1)",
        "t→target s",
        "params",
        "train speed ×",
        "inference speed ×",
    ]
    stress = has_stress(result)
    if stress:
        header[5:5] = ["σ MAE GPa", "σ RMSE GPa"]
    out = []
    for name in result["order"]:
        m = result["models"][name]
        acc = m[part]
        tt = m["time_to_target_s"]
        reached = f" ({m['reached_target']}/{len(m['seeds'])})" if m["reached_target"] < len(m["seeds"]) else ""
        out.append(
            [
                name,
                _pm(acc["force_mae"], 1000),
                _pm(acc["force_rmse"], 1000),
                _pm(acc["energy_mae_per_atom"], 1000),
                _pm(acc["energy_rmse_per_atom"], 1000),
                *([_pm(acc["stress_mae"], GPA, 3), _pm(acc["stress_rmse"], GPA, 3)] if stress else []),
                f"{m['training']['configs_per_s']:.2f} ± {_iqr_rate(m['training']):.2f}",
                _pm(m["train_configs_per_s_runs"]),
                f"{m['inference']['us_per_atom_step']:.1f} ± {1e6 * m['inference']['iqr_s'] / m['inference']['atoms_per_call']:.1f}",
                _pm(tt, 1.0, 1) + reached,
                f"{m['n_params']:,}",
                f"{m['train_speed_ratio']:.2f}",
                f"{m['inference_speed_ratio']:.2f}",
            ]
        )
    return header, out


PAIRED_UNITS = {"force_mae": ("F MAE", "meV/Å", 1000.0), "energy_mae_per_atom": ("E MAE", "meV/atom", 1000.0)}


def paired_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paired comparisons (``result["paired"]``, see
    :mod:`mlffbench.speed.statistics`): a row per pair of models and metric."""
    header = ["A − B", "metric", "unit", "mean diff", "95% CI", "min. detectable", "Wilcoxon p", "seeds", "verdict"]
    out = []
    for p in result.get("paired") or []:
        what, unit, scale = PAIRED_UNITS.get(p["metric"], ("σ MAE", "GPa", GPA))
        if p["mean_diff"] is None:
            out.append([f"{p['a']} − {p['b']}", what, unit, "—", "—", "—", "—", "", p["verdict"]])
            continue
        lo, hi = p["ci"]
        out.append(
            [
                f"{p['a']} − {p['b']}",
                what,
                unit,
                f"{scale * p['mean_diff']:+.3g}",
                f"[{scale * lo:+.3g}, {scale * hi:+.3g}]",
                f"{scale * p['mdd']:.3g}",
                f"{p['wilcoxon_p']:.2g}",
                f"{p['seeds_a']}/{p['seeds_b']}",
                p["verdict"],
            ]
        )
    return header, out


def paired_note(result: dict[str, Any]) -> str:
    """One sentence per metric: which differences are real, which are within the noise."""
    real = [
        f"{p['verdict']} on {PAIRED_UNITS.get(p['metric'], ('σ MAE',))[0]} ({p['a']} vs {p['b']})"
        for p in result.get("paired") or []
        if p["verdict"] != "tied within the noise"
    ]
    tied = [
        f"{p['a']} vs {p['b']} on {PAIRED_UNITS.get(p['metric'], ('σ MAE',))[0]}"
        for p in result.get("paired") or []
        if p["verdict"] == "tied within the noise"
    ]
    parts = []
    if real:
        parts.append("Real differences: " + "; ".join(real) + ".")
    if tied:
        parts.append("Tied within the noise: " + "; ".join(tied) + ".")
    few = {p["configs"] for p in result.get("paired") or [] if (p.get("wilcoxon_min_p") or 0) >= p.get("alpha", 0.05)}
    if few:
        parts.append(
            f"With {min(few)} test configurations the signed-rank test cannot reach p < 0.05: "
            "no difference can be called real (use more test configurations)."
        )
    return " ".join(parts)


def has_stress(result: dict[str, Any]) -> bool:
    """Whether any model of a comparison has stress errors (periodic data with stress)."""
    return any(m[result["part"]].get("stress_mae", {}).get("n", 0) for m in result["models"].values())


def _iqr_rate(t: dict[str, Any]) -> float:
    """Half the spread of configurations/s between the quartiles of the call time."""
    c = t["configs_per_call"]
    return 0.5 * (c / t["q1_s"] - c / t["q3_s"]) if t["q1_s"] > 0 else 0.0


def group_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    if not result.get("group_kind"):
        return [], []
    names = result["order"]
    header = (
        [result["group_kind"], "configs"] + [f"{n} F MAE meV/Å" for n in names] + [f"{n} E MAE meV/atom" for n in names]
    )
    first = result["runs"][0]["groups"]
    out = []
    for g in first:
        row = [g, str(first[g]["configs"])]
        row += [_pm(result["models"][n]["groups"][g]["force_mae"], 1000) for n in names]
        row += [_pm(result["models"][n]["groups"][g]["energy_mae_per_atom"], 1000) for n in names]
        out.append(row)
    return header, out


def task_rows(result: dict[str, Any], limit: int = 0) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the task results side by side: a row per model, a column per task
    figure (numbers and flags; ``limit`` > 0: at most that many columns)."""
    tasks = result.get("tasks") or {}
    columns: dict[tuple[str, str], str] = {}
    for per_model in tasks.values():
        for task, figures in per_model.items():
            for name, f in figures.items():
                if isinstance(f.get("value"), (int, float, bool)) or f.get("value") is None:
                    columns.setdefault((task, name), f.get("unit", ""))
    keys = list(columns)[:limit] if limit else list(columns)
    if not keys:
        return [], []
    header = ["model"] + [f"{t}.{n}" + (f" {columns[(t, n)]}" if columns[(t, n)] else "") for t, n in keys]
    body = []
    for model in result["order"]:
        figures = tasks.get(model, {})
        row = [model]
        for t, n in keys:
            value = figures.get(t, {}).get(n, {}).get("value")
            if value is None:
                row.append("—")
            elif isinstance(value, bool):
                row.append("yes" if value else "no")
            elif isinstance(value, float):
                row.append(f"{value:.4g}")
            else:
                row.append(str(value))
        body.append(row)
    return header, body


def _is_unit(word: str) -> bool:
    return "/" in word or word.startswith("(") or word in ("s", "GPa", "×", "%")


def _two_lines(header: str) -> str:
    """A header with its unit (and what follows) on a second line: "F MAE meV/Å (test)" -> "F MAE\\nmeV/Å (test)"."""
    words = header.split(" ")
    for k, word in enumerate(words[1:], start=1):
        if _is_unit(word):
            return " ".join(words[:k]) + "\n" + " ".join(words[k:])
    return header


def _words(text: str) -> list[str]:
    """What a console cell may be broken into: words, "± spread" kept whole."""
    out = []
    for line in text.replace(" ± ", "\n± ").split("\n"):
        out += [line] if line.startswith("± ") else line.split(" ")
    return out


def _width(texts: list[str]) -> int:
    return max((len(w) for t in texts for w in _words(t)), default=1)


def _table(title: str, header: list[str], body: list[list[str]], cols: list[int], keep: int, left, widths):
    from rich.table import Table

    table = Table(title=title)
    for k in cols:
        table.add_column(
            _two_lines(header[k]),
            justify="left" if k < keep or header[k] in left else "right",
            width=widths[k],
            overflow="fold",
        )
    for row in body:  # "mean ± std" that does not fit on one line: the spread on a second line
        table.add_row(*(row[k].replace(" ± ", "\n± ") if len(row[k]) > widths[k] else row[k] for k in cols))
    return table


def _fit(low: list[int], high: list[int], room: int) -> list[int]:
    """Column widths between their least (longest word) and natural ones, within ``room``."""
    widths = list(low)
    spare = room - sum(widths)
    for k in sorted(range(len(low)), key=lambda k: high[k] - low[k]):  # the cheapest to unwrap first
        extra = min(spare, high[k] - low[k])
        widths[k] += extra
        spare -= extra
    return widths


def print_table(console, title: str, header: list[str], body: list[list[str]], keep: int = 1, left=("model",)) -> None:
    """A rich table that reads at any console width (80 columns, a pipe): units on a second
    header line, every column of a fixed width no narrower than its longest word (nothing cut
    to "…"), and the columns after the first ``keep`` split over several tables where one
    does not fit."""
    low = [_width([h, *(row[k] for row in body)]) for k, h in enumerate(header)]
    high = [
        max(len(line) for text in (_two_lines(h), *(row[k] for row in body)) for line in text.split("\n"))
        for k, h in enumerate(header)
    ]
    width = console.width

    def need(cols: list[int]) -> int:
        return sum(low[k] for k in cols) + 3 * len(cols) + 1

    chunks: list[list[int]] = [[]]
    for k in range(keep, len(header)):
        if chunks[-1] and need(list(range(keep)) + chunks[-1] + [k]) > width:
            chunks.append([])
        chunks[-1].append(k)
    for n, chunk in enumerate(chunks):
        cols = list(range(keep)) + chunk
        fitted = _fit([low[k] for k in cols], [high[k] for k in cols], width - 3 * len(cols) - 1)
        widths = dict(zip(cols, fitted, strict=True))
        part = f" ({n + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        console.print(_table(title + part, header, body, cols, keep, left, widths))


def render(result: dict[str, Any], console) -> None:
    header, body = rows(result)
    title = f"compare on {result['dataset']} — split {result['split_fingerprint'][:12]}, {result['part']} part"
    print_table(console, title, header, body)
    gh, gb = group_rows(result)
    if gb:
        print_table(console, f"{result['part']} errors by {result['group_kind']} (mean ± std over seeds)", gh, gb)
    th, tb = task_rows(result)
    if tb:  # transposed on the console (a row per task figure, a column per model); report.md has a column per figure
        print_table(
            console,
            "task results (RUN_DIR/tasks/*/result.json of each model's first run)",
            ["task figure", *(row[0] for row in tb)],
            [[col, *(row[k] for row in tb)] for k, col in enumerate(th[1:], start=1)],
        )
    ph, pb = paired_rows(result)
    if pb:
        print_table(
            console,
            f"paired differences on the {result['part']} configurations (negative: A has lower error)",
            ph,
            pb,
            left=("verdict",),
        )
        console.print(paired_note(result), highlight=False)
    target = result.get("target")
    what, unit = SCORES[result["score"]]
    console.print(
        f"mean ± std over seeds {sorted({s for m in result['models'].values() for s in m['seeds']})} (one split); speed: median ± IQR/2 "
        f"of calls interleaved in this process; speed × relative to {result['order'][0]} (> 1 faster); "
        + (f"target {what} {1000 * target:.1f} {unit} (validation)" if target else "no target"),
        highlight=False,
    )
    if len(result["budget"]["given"]) > 1:
        console.print(
            f"[yellow]warning:[/] the runs had different budgets ({', '.join(result['budget']['given'])})",
            highlight=False,
        )
    for warning in result.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"report: {result['report']}", highlight=False)


# ------------------------------------------------------------------ plots
def plots(result: dict[str, Any], parity: dict[str, dict[str, np.ndarray]], out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    names = result["order"]
    colors = {n: plt.get_cmap("tab10")(k % 10) for k, n in enumerate(names)}
    part = result["part"]
    score = result["score"]
    what, unit = SCORES[score]
    paths = {}

    # accuracy vs speed: two panels (inference, training)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for n in names:
        m = result["models"][n]
        f = m[part][score]
        y, yerr = 1000 * f["mean"], 1000 * f["std"]
        inf = m["inference"]
        xi = inf["us_per_atom_step"]
        xi_err = [
            [1e6 * (inf["median_s"] - inf["q1_s"]) / inf["atoms_per_call"]],
            [1e6 * (inf["q3_s"] - inf["median_s"]) / inf["atoms_per_call"]],
        ]
        axes[0].errorbar([xi], [y], xerr=xi_err, yerr=[yerr], fmt="o", ms=8, capsize=4, color=colors[n], label=n)
        tr = m["training"]
        xt = tr["configs_per_s"]
        c = tr["configs_per_call"]
        xt_err = [[xt - c / tr["q3_s"]], [c / tr["q1_s"] - xt]]
        axes[1].errorbar([xt], [y], xerr=xt_err, yerr=[yerr], fmt="o", ms=8, capsize=4, color=colors[n], label=n)
    axes[0].set_xlabel("inference time, batch 1 (µs per atom per energy+forces step) — lower is faster")
    axes[1].set_xlabel("training speed (configurations per second) — higher is faster")
    for ax in axes:
        ax.set_ylabel(f"{part} {what} ({unit})")
        ax.grid(alpha=0.3)
        ax.legend(title="model")
    fig.suptitle(f"accuracy vs speed on {result['dataset']} (mean ± std over seeds; speed median, quartiles)")
    fig.tight_layout()
    paths["accuracy_vs_speed"] = _save(fig, out_dir / PLOTS["accuracy_vs_speed"])

    # learning curves: validation force MAE vs wall time
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = ["-", "--", ":", "-."]
    for r in result["runs"]:
        h = [p for p in r["history"] if p["val_score"] is not None]
        if not h:
            continue
        k = (
            result["models"][r["model"]]["seeds"].index(r["seed"])
            if r["seed"] in result["models"][r["model"]]["seeds"]
            else 0
        )
        ax.plot(
            [p["wall_s"] for p in h],
            [1000 * p["val_score"] for p in h],
            styles[k % len(styles)],
            marker="o",
            ms=3,
            color=colors[r["model"]],
            label=f"{r['model']}, seed {r['seed']}",
        )
    if result.get("target"):
        ax.axhline(1000 * result["target"], color="grey", lw=1, ls="--", label="target")
    ax.set_xlabel("wall time since training start (s, compilation and validation included)")
    ax.set_ylabel(f"validation {what} ({unit})")
    values = [1000 * p["val_score"] for r in result["runs"] for p in r["history"] if p["val_score"]]
    if values and max(values) > 5 * min(values):
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"{what} vs wall time on {result['dataset']}")
    fig.tight_layout()
    paths["learning_curves"] = _save(fig, out_dir / PLOTS["learning_curves"])

    # parity of force components (energies per atom without forces) on the test part, first seed
    quantity, qunit = ("force component", "eV/Å") if score == "force_mae" else ("energy per atom", "eV/atom")
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.4), squeeze=False)
    for ax, n in zip(axes[0], names, strict=True):
        ref, pred = parity[n]["ref"], parity[n]["pred"]
        both = np.concatenate([ref, pred]) if ref.size else np.zeros(1)
        lo, hi = float(both.min()), float(both.max())
        pad = 0.05 * (hi - lo or 1.0)
        lo, hi = lo - pad, hi + pad
        ax.scatter(ref, pred, s=2, alpha=0.3, color=colors[n], label=f"{n} ({ref.size:,} values)", rasterized=True)
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, label="predicted = reference")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        mae = 1000 * float(np.mean(np.abs(pred - ref))) if ref.size else float("nan")
        ax.set_title(f"{n}: MAE {mae:.1f} m{qunit}")
        ax.set_xlabel(f"reference {quantity} ({qunit})")
        ax.set_ylabel(f"predicted {quantity} ({qunit})")
        ax.legend(loc="upper left", fontsize=8, markerscale=4)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{quantity} parity, {part} part of {result['dataset']} (first seed)")
    fig.tight_layout()
    paths["parity"] = _save(fig, out_dir / PLOTS["parity"])
    return paths


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# --------------------------------------------------------------- markdown
def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def markdown(result: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    machine = result["machine"]
    header, body = rows(result)
    target = result.get("target")
    what, unit = SCORES[result["score"]]
    seeds = sorted({s for m in result["models"].values() for s in m["seeds"]})
    parts = [
        f"# mlffbench compare: {', '.join(result['order'])} on {result['dataset']}",
        "",
        (
            f"- split fingerprint `{result['split_fingerprint']}` (every run; dataset `{result['dataset_fingerprint'][:16]}`), "
            f"sizes {result['split_sizes']}; errors on the **{result['part']}** part"
        ),
        f"- budget per run: {', '.join(result['budget']['given'])} (epochs trained: {result['budget']['epochs']})"
        + (" — **different budgets**" if len(result["budget"]["given"]) > 1 else "")
        + f"; seeds {seeds} ({result['seeds_meaning']})",
        (
            f"- machine: {machine['cpu']}, {machine['cpus_usable']} of {machine['cpu_count']} cores, devices {machine['devices']}, "
            f"load average at the end {', '.join(f'{v:.2f}' for v in machine['loadavg'])}"
        ),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        "",
        "## Accuracy and speed",
        "",
        _md_table(header, body),
        "",
        "Errors: mean ± standard deviation over seeds. Speed: measured in one process, the models alternating call by call, "
        f"{result['protocol']['repeats']} timed calls each after a separately timed warm-up (compilation; at least "
        f"{result['protocol'].get('warmup_min_s', 0):g} s of calls), the device "
        "synchronised before each clock read; median ± half the interquartile range. `train conf/s (runs)`: the runs' own "
        "figures, measured while they trained (other times, other load). `t→target`: wall time at which the validation "
        + (f"{what} first reached {1000 * target:.1f} {unit}" if target else f"{what} reached the target")
        + f" (mean ± std over the seeds that reached it). Speed × is relative to {result['order'][0]} (> 1: faster). "
        "Training speed is at each model's own training batch size ("
        + ", ".join(f"{n} {result['models'][n]['batch_size']}" for n in result["order"])
        + "); speed is timed on the first run of each model (it does not depend on the seed).",
        "",
    ]
    ph, pb = paired_rows(result)
    if pb:
        parts += [
            "## Paired differences",
            "",
            _md_table(ph, pb),
            "",
            (
                f"A − B on the same {result['part']} "
                f"configurations (negative: A has the lower error). Method: {result.get('paired_method', '')}."
            ),
            "",
            paired_note(result),
            "",
        ]
    for warning in result.get("warnings") or []:
        parts += [f"> **Warning:** {warning}", ""]
    gh, gb = group_rows(result)
    if gb:
        parts += [f"## {result['part'].capitalize()} errors by {result['group_kind']}", "", _md_table(gh, gb), ""]
    th, tb = task_rows(result)
    if tb:
        parts += ["## Task results", "", _md_table(th, tb), ""]
    parts += ["## Plots", ""]
    for key, file in result.get("plots", {}).items():
        parts += [f"![{key}]({Path(file).name})", ""]
    stress = has_stress(result)
    parts += [
        "## Runs",
        "",
        _md_table(
            [
                "model",
                "seed",
                "epochs",
                "F MAE meV/Å",
                "E MAE meV/atom",
                *(["σ MAE GPa"] if stress else []),
                "t→target s",
                "run directory",
            ],
            [
                [
                    r["model"],
                    str(r["seed"]),
                    str(r["epochs"]),
                    f"{1000 * r[result['part']].get('force_mae', float('nan')):.2f}",
                    f"{1000 * r[result['part']].get('energy_mae_per_atom', float('nan')):.2f}",
                    *([f"{GPA * r[result['part']].get('stress_mae', float('nan')):.3f}"] if stress else []),
                    "—" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.1f}",
                    f"`{r['run_dir']}`",
                ]
                for r in result["runs"]
            ],
        ),
        "",
    ]
    path.write_text("\n".join(parts))
    return path


# ------------------------------------------------------------------ mlflow
def log_mlflow(result: dict[str, Any], out_dir: Path, options, run_dirs, run_id: str | None = None) -> str:
    """One parent MLflow run (``run_id``: the one the compare opened, else a new one) with the
    comparison's numbers and files, ended FINISHED; the compared runs' own MLflow runs (where
    known) are tagged as its children."""
    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = options.tracking_uri or default_tracking_uri(options.runs_dir)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifacts = (Path(options.runs_dir).resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    tags = {
        "mlffbench.kind": "compare",
        "split_fingerprint": result["split_fingerprint"],
        "dataset": result["dataset"],
        "models": ",".join(result["order"]),
    }
    if run_id is None:
        run_id = client.create_run(experiment_id, run_name=Path(out_dir).name, tags=tags).info.run_id
    else:
        for key, value in {**tags, "mlffbench.status": "finished"}.items():
            client.set_tag(run_id, key, value)
    params = {
        "dataset": result["dataset"],
        "models": ",".join(result["order"]),
        "budget": ",".join(result["budget"]["given"]),
        "seeds": str(sorted({s for m in result["models"].values() for s in m["seeds"]})),
        "split_fingerprint": result["split_fingerprint"],
    }
    for k, v in params.items():
        client.log_param(run_id, k, str(v)[:6000])
    metrics = {}
    for name, m in result["models"].items():
        flat = flatten(
            name,
            {
                result["part"]: {
                    **{k: v["mean"] for k, v in m[result["part"]].items()},
                    **{f"{k}_gpa": GPA * v["mean"] for k, v in m[result["part"]].items() if k.startswith("stress_")},
                },
                "train_configs_per_s": m["training"]["configs_per_s"],
                "inference_us_per_atom_step": m["inference"]["us_per_atom_step"],
                "n_params": m["n_params"],
                "train_speed_ratio": m["train_speed_ratio"],
                "inference_speed_ratio": m["inference_speed_ratio"],
            },
            {},
        )
        metrics.update({k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and np.isfinite(v)})
        for task, figures in (result.get("tasks") or {}).get(name, {}).items():
            for fig, f in figures.items():
                v = f.get("value")
                if isinstance(v, (int, float)) and np.isfinite(float(v)):
                    metrics[f"{name}.task.{task}.{fig}"] = float(v)
    for pair in result.get("paired") or []:  # A - B per metric: the difference, its interval and p
        stem = f"paired.{pair['a']}-{pair['b']}.{pair['metric']}"
        if pair["mean_diff"] is not None:
            metrics.update(
                {
                    f"{stem}.mean_diff": pair["mean_diff"],
                    f"{stem}.ci_low": pair["ci"][0],
                    f"{stem}.ci_high": pair["ci"][1],
                    f"{stem}.mdd": pair["mdd"],
                    f"{stem}.wilcoxon_p": pair["wilcoxon_p"],
                }
            )
    for k, v in metrics.items():
        client.log_metric(run_id, k, v)
    for file in sorted(Path(out_dir).iterdir()):
        if file.is_file():
            client.log_artifact(run_id, str(file))
    client.set_terminated(run_id)
    for d in run_dirs:
        try:
            child = runs.read_json(Path(d) / runs.CONFIG).get("mlflow_run_id")
            if child:
                client.set_tag(child, "mlflow.parentRunId", run_id)
        except Exception:  # noqa: BLE001, S112 - a run from another store is simply not linked
            continue
    return run_id
