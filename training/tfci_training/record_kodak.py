"""Copy the Kodak figures of `just eval` into models/manifest.json (each family's "kodak" record).

    python -m tfci_training.record_kodak --eval ../docs/eval --manifest ../models/manifest.json

Reads docs/eval/means.csv (mean bpp, PSNR, MS-SSIM dB, SSIM and the Y/Cb/Cr plane PSNRs per level, from
the Rust decoder, and the JPEG curve to compare each level with at its own bpp)
and the BD-rate table of docs/eval/report.md; changes nothing else in the manifest (the model files and
their sha256 stay as they are).  With ``--models-md`` it also rewrites, in docs/models.md, the text
between ``<!-- kodak:FAMILY -->`` and ``<!-- /kodak:FAMILY -->`` (the per-level table, whether the
levels are monotone, the BD-rates) and between ``<!-- targets -->`` and ``<!-- /targets -->``, so the
figures in the doc are never typed by hand.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import math
import re
from typing import Dict, List, Optional

COMMAND = "just eval (tfci-eval run --images ../shared/data/kodak), Rust CPU decoder, 24 images"


def _pct(cell: str) -> Optional[float]:
    m = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)%\s*", cell)
    return float(m.group(1)) if m else None


def bd_rates(report: str) -> Dict[str, Dict[str, Optional[float]]]:
    """The rows of the report's "BD-rate against JPEG" table: codec -> {psnr, msssim_db}."""
    out = {}
    in_table = False
    for line in report.splitlines():
        if line.startswith("## "):
            in_table = line.strip() == "## BD-rate against JPEG"
            continue
        if in_table and line.startswith("| ") and not line.startswith("| codec") and "---" not in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3:
                out[cells[0]] = {"psnr": _pct(cells[1]), "msssim_db": _pct(cells[2])}
    return out


def jpeg_msssim_at(curve: List[tuple], bpp: float) -> Optional[float]:
    """JPEG's MS-SSIM dB at ``bpp``, linear in log(bpp) between the report's JPEG points (None outside)."""
    pts = sorted(curve)
    for (b0, q0), (b1, q1) in zip(pts, pts[1:]):
        if b0 <= bpp <= b1 and b1 > b0:
            t = (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return round(q0 + t * (q1 - q0), 3)
    return None


def levels(means_csv: str) -> Dict[str, list]:
    out: Dict[str, list] = {}
    jpeg: List[tuple] = []
    with open(means_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["codec"] == "jpeg":
            jpeg.append((float(row["bpp"]), float(row["msssim_db"])))
    for row in rows:
        m = re.fullmatch(r"level=(\d+)", row["setting"])
        if not m:
            continue
        rec = {
            "level": int(m.group(1)),
            "bpp": round(float(row["bpp"]), 4),
            "psnr": round(float(row["psnr"]), 3),
            "msssim_db": round(float(row["msssim_db"]), 3),
            "ssim": round(float(row["ssim"]), 4),
        }
        for plane in ("y", "cb", "cr"):
            if row.get(f"psnr_{plane}"):
                rec[f"psnr_{plane}"] = round(float(row[f"psnr_{plane}"]), 2)
        rec["jpeg_msssim_db"] = jpeg_msssim_at(jpeg, float(row["bpp"]))
        out.setdefault(row["codec"], []).append(rec)
    for v in out.values():
        v.sort(key=lambda r: r["level"])
    return out


# The stage-1 targets (BD-rate vs PIL JPEG on Kodak, issue "Models a user would accept") and the
# published figures they derive from.
TARGETS = {
    "bmshj2018-factorized-msssim": ("msssim_db", -50.0, "Ballé 2018: -65.4 %"),
    "b2018-gdn-128": ("psnr", -35.0, "Ballé 2017: -44.0 %"),
    "mbt2018-mean-msssim": ("msssim_db", -50.0, "Minnen 2018: -68.3 %"),
}
# Colour and JPEG-parity targets of the MS-SSIM families, at every level from this one up.
COLOUR_FROM_LEVEL = 2
COLOUR_MIN_DB = 34.0
MEASURES = (("bpp", "bpp"), ("psnr", "PSNR"), ("msssim_db", "MS-SSIM dB"), ("ssim", "SSIM"))
AXES = {"psnr": "PSNR", "msssim_db": "MS-SSIM dB"}


def _fmt_pct(v: Optional[float]) -> str:
    return "n/a (the curves do not overlap)" if v is None else f"{v:+.2f} %"


def monotone_sentence(rows: list) -> str:
    """Which measures rise with every level, and where the others do not."""
    broken = []
    for key, label in MEASURES:
        drops = [f"{a['level']}->{b['level']} ({a[key]:g} -> {b[key]:g})"
                 for a, b in zip(rows, rows[1:]) if not b[key] > a[key]]
        if drops:
            broken.append(f"{label} does not rise at " + ", ".join(drops))
    if not broken:
        return "Levels are monotone in rate and in every quality measure."
    return "**Not monotone:** " + "; ".join(broken) + "."


def _cell(v: Optional[float], digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def family_section(name: str, record: dict) -> str:
    rows = record["levels"]
    lines = ["| level | bpp | PSNR (dB) | MS-SSIM (dB) | SSIM | Y (dB) | Cb (dB) | Cr (dB) | JPEG MS-SSIM (dB) at this bpp |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['level']} | {r['bpp']:.4f} | {r['psnr']:.3f} | {r['msssim_db']:.3f} | "
                     f"{r['ssim']:.4f} | {_cell(r.get('psnr_y'), 2)} | {_cell(r.get('psnr_cb'), 2)} | "
                     f"{_cell(r.get('psnr_cr'), 2)} | {_cell(r.get('jpeg_msssim_db'), 3)} |")
    bd = record["bd_rate_vs_pil_jpeg"]
    lines += ["", monotone_sentence(rows) + f" {rows[0]['bpp']:.3f}-{rows[-1]['bpp']:.3f} bpp. BD-rate "
              f"against PIL JPEG: {_fmt_pct(bd['psnr'])} on PSNR, {_fmt_pct(bd['msssim_db'])} on "
              f"MS-SSIM dB."]
    return "\n".join(lines)


def targets_section(manifest: dict) -> str:
    lines = ["| family | target (BD-rate vs PIL JPEG) | published | ours | met |", "|---|---|---|---|---|"]
    for fam in manifest["families"]:
        t = TARGETS.get(fam["family"])
        if t is None or not fam.get("kodak"):
            continue
        axis, target, published = t
        ours = fam["kodak"]["bd_rate_vs_pil_jpeg"][axis]
        met = "yes" if ours is not None and ours <= target else "no"
        lines.append(f"| `{fam['family']}` | <= {target:g} % on {AXES[axis]} | {published} | "
                     f"{_fmt_pct(ours)} | {met} |")
        if axis != "msssim_db":
            continue
        rows = [r for r in fam["kodak"]["levels"] if r["level"] >= COLOUR_FROM_LEVEL]
        chroma = [min(r.get("psnr_cb", float("nan")), r.get("psnr_cr", float("nan"))) for r in rows]
        worst = min(chroma) if chroma else float("nan")
        ok = all(c >= COLOUR_MIN_DB for c in chroma) and bool(chroma)
        lines.append(f"| `{fam['family']}` | Cb and Cr PSNR >= {COLOUR_MIN_DB:g} dB at levels >= "
                     f"{COLOUR_FROM_LEVEL} | | lowest {worst:.2f} dB | {'yes' if ok else 'no'} |")
        gaps = [r["msssim_db"] - r["jpeg_msssim_db"] for r in rows if r.get("jpeg_msssim_db") is not None]
        below = [r["level"] for r in rows
                 if r.get("jpeg_msssim_db") is not None and r["msssim_db"] < r["jpeg_msssim_db"]]
        lines.append(f"| `{fam['family']}` | MS-SSIM dB >= JPEG's at the same bpp, levels >= "
                     f"{COLOUR_FROM_LEVEL} | | "
                     + (f"worst {min(gaps):+.2f} dB" if gaps else "n/a")
                     + (f" (below at levels {', '.join(map(str, below))})" if below else "")
                     + f" | {'yes' if gaps and not below else 'no'} |")
    return "\n".join(lines)


# Stages before the history was recorded by this script: steps, BD-rate vs PIL JPEG on the family's
# axis, commit, lowest Cb / Cr PSNR at levels >= 2 (None where not measured). The b4c0fb7 rows are the
# shipped models of that commit re-evaluated by `tfci-eval run` with JPEG q5-95 (the earlier rows used
# q10-95; q5 moved those BD-rates by 0.1-0.2 points); the older rows are docs/models.md's of their time.
EARLIER_STAGES = {
    "bmshj2018-factorized-msssim": [(3000, 321.8, "3def3ec", None, None), (5500, 190.4, "07bf858", None, None),
                                    (9500, -33.01, "91fefa3", None, None),
                                    (11000, -37.53, "b4c0fb7", 37.49, 35.68)],
    "mbt2018-mean-msssim": [(3000, 10.96, "3def3ec", None, None), (5500, -11.72, "07bf858", None, None),
                            (9500, -32.79, "91fefa3", None, None), (11000, -35.12, "b4c0fb7", 34.42, 30.91)],
    "b2018-gdn-128": [(17000, -9.78, "91fefa3", None, None), (26000, -27.01, "b4c0fb7", 39.69, 38.91)],
}


def stage_record(fam: dict) -> dict:
    """One line of the family's training history from its manifest entry and Kodak record."""
    axis = TARGETS.get(fam["family"], ("msssim_db",))[0]
    tr = fam.get("training") or {}
    rows = [r for r in fam["kodak"]["levels"] if r["level"] >= COLOUR_FROM_LEVEL]
    cb = [r["psnr_cb"] for r in rows if "psnr_cb" in r]
    cr = [r["psnr_cr"] for r in rows if "psnr_cr" in r]
    return {"steps": tr.get("steps"), "cpu_minutes": tr.get("cpu_minutes"), "minutes": tr.get("minutes"),
            "version": fam.get("version"), "axis": axis,
            "bd_rate": fam["kodak"]["bd_rate_vs_pil_jpeg"][axis],
            "min_cb": min(cb) if cb else None, "min_cr": min(cr) if cr else None}


def update_history(fam: dict) -> list:
    """The family's ``history`` (one record per evaluated stage), seeded with the earlier stages and
    extended when this evaluation is of a new step count."""
    hist = fam.get("history")
    if not hist:
        axis = TARGETS.get(fam["family"], ("msssim_db",))[0]
        hist = [{"steps": st, "cpu_minutes": None, "minutes": None, "version": None, "axis": axis,
                 "bd_rate": bd, "min_cb": cb, "min_cr": cr, "commit": c}
                for st, bd, c, cb, cr in EARLIER_STAGES.get(fam["family"], [])]
    rec = stage_record(fam)
    if hist and hist[-1]["steps"] == rec["steps"]:
        hist[-1] = {**hist[-1], **rec}
    else:
        hist.append(rec)
    fam["history"] = hist
    return hist


def history_section(manifest: dict) -> str:
    lines = ["| family | steps | CPU minutes (trunk, total) | BD-rate vs PIL JPEG | lowest Cb / Cr PSNR at levels >= 2 | shipped in |",
             "|---|---:|---:|---:|---|---|"]
    for fam in manifest["families"]:
        for h in fam.get("history") or []:
            cpu = "n/a" if h.get("cpu_minutes") in (None, 0) else f"{h['cpu_minutes']:.0f}"
            col = ("n/a" if h.get("min_cb") is None
                   else f"{h['min_cb']:.2f} / {h['min_cr']:.2f} dB")
            where = f"commit {h['commit']}" if h.get("commit") else (
                f"version {h['version']}" if h.get("version") else "this version")
            lines.append(f"| `{fam['family']}` | {h['steps']:,} | {cpu} | {_fmt_pct(h['bd_rate'])} on "
                         f"{AXES[h['axis']]} | {col} | {where} |")
    return "\n".join(lines)


def replace_block(text: str, tag: str, body: str) -> str:
    """Replaces what lies between ``<!-- tag -->`` and ``<!-- /tag -->``; the markers must exist."""
    start, end = f"<!-- {tag} -->", f"<!-- /{tag} -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"docs: markers {start} ... {end} not found")
    return text[: i + len(start)] + "\n" + body + "\n" + text[j:]


def write_models_md(path: str, manifest: dict) -> None:
    with open(path) as f:
        text = f.read()
    for fam in manifest["families"]:
        if fam.get("kodak"):
            text = replace_block(text, f"kodak:{fam['family']}", family_section(fam["family"], fam["kodak"]))
    text = replace_block(text, "targets", targets_section(manifest))
    text = replace_block(text, "history", history_section(manifest))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", default="../docs/eval", help="folder written by `just eval`")
    ap.add_argument("--manifest", default="../models/manifest.json")
    ap.add_argument("--models-md", help="also rewrite the marked tables of this docs/models.md")
    args = ap.parse_args(argv)
    with open(os.path.join(args.eval, "report.md")) as f:
        bd = bd_rates(f.read())
    lv = levels(os.path.join(args.eval, "means.csv"))
    with open(args.manifest) as f:
        manifest = json.load(f)
    for fam in manifest["families"]:
        name = fam["family"]
        if name not in lv:
            print(f"{name}: not in the evaluation, left as it was")
            continue
        rates = bd.get(name, {"psnr": None, "msssim_db": None})
        fam["kodak"] = {"command": COMMAND, "levels": lv[name], "bd_rate_vs_pil_jpeg": rates}
        update_history(fam)
        print(f"{name}: {len(lv[name])} levels, BD-rate vs PIL JPEG {rates}")
    tmp = args.manifest + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.manifest)
    if args.models_md:
        write_models_md(args.models_md, manifest)
        print(f"rewrote the Kodak tables of {args.models_md}")


if __name__ == "__main__":
    main()
