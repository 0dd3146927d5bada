"""The BD-rate-against-steps trend: the fit, where it meets the target, and the plot it writes."""

import json
import math

from tfci_training import plot_history as ph


def test_log_fit_recovers_a_log_linear_curve():
    pts = [(s, 10.0 - 5.0 * math.log(s)) for s in (11000, 20000, 40000)]
    a, b = ph.log_fit(pts)
    assert abs(a - 10.0) < 1e-9 and abs(b + 5.0) < 1e-9
    need = ph.steps_to((a, b), -45.0)
    assert abs(need - math.exp(11.0)) / math.exp(11.0) < 1e-9
    assert ph.steps_to((0.0, 1.0), -50.0) is None  # a rising trend never reaches a lower target
    assert ph.log_fit([(11000, -30.0)]) is None


def test_trends_use_trunk_stages_and_branches(tmp_path):
    hist = [{"steps": 3000, "bd_rate": 300.0}, {"steps": 11000, "bd_rate": -35.0},
            {"steps": 22000, "bd_rate": -40.0}]
    manifest = {"families": [{"family": "mbt2018-mean-msssim", "history": hist}]}
    csv = tmp_path / "branches.csv"
    csv.write_text("family,steps,bd_rate,note\nmbt2018-mean-msssim,44000,-45.0,\"a branch, refused\"\n")
    branches = ph.read_branches(str(csv))
    (t,) = ph.trends(manifest, branches)
    assert t["points"] == 3 and t["last"] == (44000, -45.0)  # the 3,000-step stage is before the trunk
    assert abs(t["fit"][1] * math.log(2) + 5.0) < 1e-9  # -5 points per doubling
    assert round(t["steps_to_target"]) == 88000
    out = tmp_path / "h.png"
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    ph.main(["--manifest", str(tmp_path / "m.json"), "--branches", str(csv), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
