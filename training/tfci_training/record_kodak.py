"""Copy the Kodak figures of `just eval` into models/manifest.json (each family's "kodak" record).

    python -m tfci_training.record_kodak --eval ../docs/eval --manifest ../models/manifest.json

Reads docs/eval/means.csv (mean bpp, PSNR, MS-SSIM dB and SSIM per level, from the Rust decoder)
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
import re
from typing import Dict, Optional

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


def levels(means_csv: str) -> Dict[str, list]:
    out: Dict[str, list] = {}
    with open(means_csv, newline="") as f:
        for row in csv.DictReader(f):
            m = re.fullmatch(r"level=(\d+)", row["setting"])
            if not m:
                continue
            out.setdefault(row["codec"], []).append({
                "level": int(m.group(1)),
                "bpp": round(float(row["bpp"]), 4),
                "psnr": round(float(row["psnr"]), 3),
                "msssim_db": round(float(row["msssim_db"]), 3),
                "ssim": round(float(row["ssim"]), 4),
            })
    for v in out.values():
        v.sort(key=lambda r: r["level"])
    return out


# The model-zoo targets (BD-rate vs PIL JPEG on Kodak) and the published figures they derive from.
TARGETS = {
    "bmshj2018-factorized-msssim": ("msssim_db", -55.0, "Ballé 2018: -65.4 %"),
    "b2018-gdn-128": ("psnr", -35.0, "Ballé 2017: -44.0 %"),
    "mbt2018-mean-msssim": ("msssim_db", -60.0, "Minnen 2018: -68.3 %"),
}
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


def family_section(name: str, record: dict) -> str:
    rows = record["levels"]
    lines = ["| level | bpp | PSNR (dB) | MS-SSIM (dB) | SSIM |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['level']} | {r['bpp']:.4f} | {r['psnr']:.3f} | {r['msssim_db']:.3f} | "
                     f"{r['ssim']:.4f} |")
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
