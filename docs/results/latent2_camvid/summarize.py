"""The mean ± sd tables of docs/latent.md's second study, from the committed metrics.json files:
python docs/results/latent2_camvid/summarize.py latent2_camvid paper-eq7,paper-mean,punet
"""

import json
import os
import statistics as st
import sys


def mean_or_dash(v, nd):
    return f"{st.mean(v):.{nd}f}" if v else "–"


study, groups_wanted = sys.argv[1], sys.argv[2].split(",")
base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", study)
groups = {}
for d in sorted(os.listdir(base)):
    p = f"{base}/{d}/metrics.json"
    if os.path.isfile(p):
        m = json.load(open(p))
        m["_seed"] = d.rsplit("-s", 1)[1]
        groups.setdefault(d.rsplit("-s", 1)[0], []).append(m)


def vals(ms, k, s=1.0):
    out = []
    for m in ms:
        v = m["miou"] if k == "miou" else (m.get("latent") or {}).get(k)
        if v is not None:
            out.append(v * s)
    return out


def f(ms, k, s=1.0, nd=2):
    v = vals(ms, k, s)
    if not v:
        return "–"
    return f"{st.mean(v):.{nd}f}" + (f" ± {st.stdev(v):.{nd}f}" if len(v) > 1 else "")


cols = [g for g in groups_wanted if g in groups]
rows = [
    ("runs (seeds)", lambda ms: f"{len(ms)} ({', '.join(m['_seed'] for m in ms)})"),
    ("val mIoU", lambda ms: f(ms, "miou", 100)),
    ("z: pixels changed by a random partner, %", lambda ms: f(ms, "swap_z_random_pixels_changed", 100, 3)),
    ("z: pixels changed by the farthest partner, %", lambda ms: f(ms, "swap_z_far_pixels_changed", 100, 3)),
    ("z: mIoU lost with a random partner, points", lambda ms: f(ms, "swap_z_random_miou_drop", 100, 2)),
    ("z zeroed: mIoU lost, points", lambda ms: f(ms, "swap_z_zero_miou_drop", 100, 2)),
    ("z zeroed: pixels changed, %", lambda ms: f(ms, "swap_z_zero_pixels_changed", 100, 2)),
    ("g: pixels changed by a random partner, %", lambda ms: f(ms, "swap_g_random_pixels_changed", 100, 3)),
    ("I(x; z), nats (Monte Carlo)", lambda ms: f(ms, "mi_z", 1, 4)),
    ("I(x; z) noise-free upper bound", lambda ms: f(ms, "mi_z_upper", 1, 4)),
    ("I(x; g), nats (Monte Carlo)", lambda ms: f(ms, "mi_g", 1, 4)),
    (
        "I(x; g) noise-free lower – upper bound (means)",
        lambda ms: f"{mean_or_dash(vals(ms, 'mi_g_lower'), 4)} – {mean_or_dash(vals(ms, 'mi_g_upper'), 4)}",
    ),
    (
        "I(x; z) / I(x; g) of the untrained network (means)",
        lambda ms: f"{mean_or_dash(vals(ms, 'untrained_mi_z'), 4)} / {mean_or_dash(vals(ms, 'untrained_mi_g'), 4)}",
    ),
    (
        "attribution share z / g / skips, % (means)",
        lambda ms: (
            f"{mean_or_dash(vals(ms, 'attribution_z', 100), 2)} / {mean_or_dash(vals(ms, 'attribution_g', 100), 2)} / "
            f"{mean_or_dash(vals(ms, 'attribution_skips', 100), 1)}"
        ),
    ),
    ("decoding PostNet's posterior means: mIoU gained, points", lambda ms: f(ms, "posterior_decode_gain", 100, 2)),
    (
        "active units z / g (the most of any seed)",
        lambda ms: f"{max(vals(ms, 'z_active_units') or [0]):.0f} / {max(vals(ms, 'g_active_units') or [0]):.0f}",
    ),
]
print("| measure | " + " | ".join(f"`{g}`" for g in cols) + " |")
print("|---|" + "---:|" * len(cols))
for name, fn in rows:
    print(f"| {name} | " + " | ".join(fn(groups[g]) for g in cols) + " |")
