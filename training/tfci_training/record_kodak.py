"""Copy the Kodak figures of `just eval` into models/manifest.json (each family's "kodak" record).

    python -m tfci_training.record_kodak --eval ../docs/eval --manifest ../models/manifest.json

Reads docs/eval/means.csv (mean bpp, PSNR, MS-SSIM dB and SSIM per level, from the Rust decoder)
and the BD-rate table of docs/eval/report.md; changes nothing else in the manifest (the model files and
their sha256 stay as they are).
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", default="../docs/eval", help="folder written by `just eval`")
    ap.add_argument("--manifest", default="../models/manifest.json")
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


if __name__ == "__main__":
    main()
