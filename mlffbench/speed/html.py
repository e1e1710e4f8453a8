"""``report.html`` of ``mlffbench compare``: one self-contained page (no file or network beside it).

The PNG plots are embedded as base64 data URIs; every table is sortable by a click on its
header (a small inline script, no library); the split fingerprint and provenance (machine,
library versions, runs) are on the page. Once its script has set the tables up it sorts the
first table by its second column and back (a self-check) and marks ``<body data-script="ok">``,
which tests read back from the rendered DOM (``chromium --headless --dump-dom``).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from mlffbench.speed import report as compare_report

SCRIPT = r"""
(function () {
  function key(text) {
    var t = text.trim().replace(/,/g, "").replace(/\u2212/g, "-");
    var m = t.match(/^[\[(]?\s*([+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)/i);
    return m ? [0, parseFloat(m[1]), t] : [1, 0, t.toLowerCase()];
  }
  function compare(a, b) {
    if (a[0] !== b[0]) return a[0] - b[0];
    if (a[0] === 0 && a[1] !== b[1]) return a[1] - b[1];
    return a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0;
  }
  function sortBy(table, col, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) {
      var c = compare(key(r.cells[col].textContent), key(s.cells[col].textContent));
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    var heads = table.tHead.rows[0].cells;
    for (var k = 0; k < heads.length; k++) heads[k].removeAttribute("aria-sort");
    heads[col].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  var tables = document.querySelectorAll("table.sortable");
  tables.forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    for (var k = 0; k < heads.length; k++) {
      (function (col) {
        heads[col].addEventListener("click", function () {
          sortBy(table, col, heads[col].getAttribute("aria-sort") === "ascending");
        });
      })(k);
    }
  });
  if (tables.length) {  // self-check: sort, then restore the original order
    var t = tables[0], body = t.tBodies[0];
    var original = Array.prototype.slice.call(body.rows);
    sortBy(t, Math.min(1, t.tHead.rows[0].cells.length - 1), false);
    original.forEach(function (r) { body.appendChild(r); });
    t.tHead.rows[0].cells[0].removeAttribute("aria-sort");
    for (var k = 0; k < t.tHead.rows[0].cells.length; k++) t.tHead.rows[0].cells[k].removeAttribute("aria-sort");
  }
  document.body.setAttribute("data-script", "ok");
})();
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #eef; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 0.3em 0; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.warning { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.5em; }
.verdict-better { color: #0a6b1f; font-weight: bold; }
code { font-size: 0.9em; }
"""


def _table(caption: str, header: list[str], body: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    rows = []
    for row in body:
        cells = []
        for cell in row:
            cls = ' class="verdict-better"' if cell.endswith(" better") else ""
            cells.append(f"<td{cls}>{e(cell)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="sortable"><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def write(result: dict[str, Any], path: Path) -> Path:
    """``report.html`` of a comparison (``compare.json``'s numbers, its plots embedded)."""
    e = html.escape
    path = Path(path)
    machine = result.get("machine", {})
    header, body = compare_report.rows(result)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mlffbench compare: {e(', '.join(result['order']))} on {e(result['dataset'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>mlffbench compare: {e(', '.join(result['order']))} on {e(result['dataset'])}</h1>",
        "<ul>",
        (
            f"<li>split fingerprint <code>{e(result['split_fingerprint'])}</code> (every run); dataset "
            f"<code>{e(str(result.get('dataset_fingerprint', '')))}</code>; sizes {e(str(result.get('split_sizes')))}; "
            f"errors on the <b>{e(result['part'])}</b> part</li>"
        ),
        (
            f"<li>budget per run: {e(', '.join(result['budget']['given']))}; seeds "
            f"{e(str(sorted({s for m in result['models'].values() for s in m['seeds']})))} "
            f"({e(result.get('seeds_meaning', ''))})</li>"
        ),
        (
            f"<li>machine: {e(str(machine.get('cpu', '')))}, {e(str(machine.get('cpus_usable', '')))} of "
            f"{e(str(machine.get('cpu_count', '')))} cores, devices {e(str(machine.get('devices', '')))}</li>"
        ),
        "<li>versions: " + e(", ".join(f"{k} {v}" for k, v in (machine.get("versions") or {}).items())) + "</li>",
        "</ul>",
    ]
    for warning in result.get("warnings") or []:
        parts.append(f'<p class="warning">Warning: {e(warning)}</p>')
    parts.append(_table("Accuracy and speed (errors: mean ± std over seeds; click a header to sort)", header, body))
    ph, pb = compare_report.paired_rows(result)
    if pb:
        parts.append(
            _table(f"Paired differences A − B on the same {result['part']} configurations (negative: A better)", ph, pb)
        )
        parts.append(f"<p>{e(compare_report.paired_note(result))}</p>")
        parts.append(f"<p><small>Method: {e(result.get('paired_method', ''))}.</small></p>")
    gh, gb = compare_report.group_rows(result)
    if gb:
        parts.append(_table(f"{result['part']} errors by {result['group_kind']}", gh, gb))
    parts.append("<h2>Plots</h2>")
    for key, file in (result.get("plots") or {}).items():
        if Path(file).is_file():
            parts.append(_image(Path(file), key))
    parts.append(
        _table(
            "Runs",
            ["model", "seed", "epochs", "F MAE meV/Å", "E MAE meV/atom", "run directory"],
            [
                [
                    r["model"],
                    str(r["seed"]),
                    str(r["epochs"]),
                    f"{1000 * r[result['part']].get('force_mae', float('nan')):.2f}",
                    f"{1000 * r[result['part']].get('energy_mae_per_atom', float('nan')):.2f}",
                    r["run_dir"],
                ]
                for r in result["runs"]
            ],
        )
    )
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
