"""The study summary page: best trial and its config, the trials table, Optuna's matplotlib plots."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import yaml


def _num(v) -> str:
    return "" if v is None else f"{v:.5g}"


def _again(row: dict) -> str:
    """`` (again: 3)`` for a trial that reruns killed trial 3."""
    return f" (again: {row['retry_of']})" if row.get("retry_of") is not None else ""


def _plots(study, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    out = []
    for name, fn in (
        ("optimization_history", vis.plot_optimization_history),
        ("param_importances", vis.plot_param_importances),
        ("parallel_coordinate", vis.plot_parallel_coordinate),
        ("intermediate_values", vis.plot_intermediate_values),
    ):
        try:
            ax = fn(study)
        except (ValueError, RuntimeError, ZeroDivisionError):  # too few trials for this plot
            continue
        fig: Any = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
        path = folder / "plots" / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append(f"plots/{path.name}")
    return out


def write_study_summary(study, folder: Path, metric: str, values: dict) -> dict:
    """``summary.json``, ``summary.md`` and ``index.html`` of the study in ``folder``."""
    import warnings

    from .config import make_config
    from .tune import overrides_of

    (folder / "plots").mkdir(exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    rows = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
         "epochs": len(t.intermediate_values), "run": t.user_attrs.get("run"),
         "seconds": t.user_attrs.get("seconds"), "where": t.user_attrs.get("where"),
         "retry_of": t.system_attrs.get("failed_trial")}
        for t in trials
    ]  # fmt: skip
    summary: dict = {"study": study.study_name, "metric": metric, "direction": study.direction.name.lower(),
                     "trials": rows}  # fmt: skip
    try:
        best = study.best_trial
    except ValueError:
        best = None
    best_cfg = ""
    if best is not None:
        base = {k: v for k, v in values.items() if not k.startswith("_")}
        cfg = make_config(base, overrides_of(best.params))
        best_cfg = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        (folder / "best_config.yaml").write_text(best_cfg)
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params,
                           "run": best.user_attrs.get("run")}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pngs = _plots(study, folder) if best is not None else []
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    title = f"nudask study {study.study_name}: {metric} ({summary['direction']})"
    md = [f"# {title}", ""]
    if best is not None:
        md += [f"**Best trial {best.number}**: {metric} = {best.value:.5g}", "",
               f"- params: `{json.dumps(best.params)}`", f"- run: {best.user_attrs.get('run')}",
               "- config: [best_config.yaml](best_config.yaml)", ""]  # fmt: skip
    md += ["| trial | state | value | epochs | params | where |", "| --- | --- | --- | --- | --- | --- |"]
    md += [
        f"| {r['number']}{_again(r)} | {r['state']} | {_num(r['value'])} | {r['epochs']} | "
        f"`{json.dumps(r['params'])}` | {r['where'] or ''} |"
        for r in rows
    ]
    md += ["", *[f"![{p}]({p})" for p in pngs]]
    (folder / "summary.md").write_text("\n".join(md) + "\n")
    table = "".join(
        f"<tr><td>{r['number']}{_again(r)}</td><td>{r['state']}</td><td>{_num(r['value'])}"
        f"</td><td>{r['epochs']}</td><td><code>{html.escape(json.dumps(r['params']))}</code></td>"
        f"<td>{html.escape(r['where'] or '')}</td></tr>"
        for r in rows
    )
    head = (
        f"<p><b>Best trial {best.number}</b>: {html.escape(metric)} = {best.value:.5g}; params "
        f"<code>{html.escape(json.dumps(best.params))}</code></p><h2>Best config</h2>"
        f"<pre>{html.escape(best_cfg)}</pre>"
        if best is not None
        else "<p>No trial has finished yet.</p>"
    )
    imgs = "".join(f'<figure><img src="{p}" style="max-width:100%"><figcaption>{p}</figcaption></figure>'
                   for p in pngs)  # fmt: skip
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 10px}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{head}<h2>Trials</h2><table><tr><th>trial</th>"
        f"<th>state</th><th>value</th><th>epochs</th><th>params</th><th>where</th></tr>{table}</table>"
        f"<h2>Plots</h2>{imgs}</body></html>"
    )
    (folder / "index.html").write_text(page)
    summary["plots"] = pngs
    return summary
