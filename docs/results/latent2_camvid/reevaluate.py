"""Add the latent-use measures of the current `phgmm evaluate` to finished runs of this study.

For each run given (default: every finished run whose metrics.json lacks ``latent.mi_z``), its
best checkpoint (``runs/experiments/latent2_camvid/RUN/checkpoints/best.pt``, kept on the machine
that trained it) is evaluated again with ``phgmm evaluate`` and the evaluation's ``latent`` entry
(and the clustering entries) replace the run's; every other number is checked to be unchanged.
The run's metrics.json records the code that measured it under ``latent_reevaluated``.

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/latent2_camvid/reevaluate.py [RUN ...]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

RES = Path("docs/results/latent2_camvid")
CKPT = Path("runs/experiments/latent2_camvid")


def main(names: list[str]) -> None:
    def measured(folder: Path) -> bool:
        m = json.loads((folder / "metrics.json").read_text())
        lat = m.get("latent") or {}
        return "mi_z" in lat or "mi_g" in lat or "latent_reevaluated" in m

    runs = names or [p.name for p in sorted(RES.iterdir()) if (p / "metrics.json").is_file() and not measured(p)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for run in runs:
        best = CKPT / run / "checkpoints" / "best.pt"
        if not best.is_file():
            print(f"[{run}] no checkpoint at {best}; skipped")
            continue
        out = Path("/tmp/latent2_reeval") / run
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "phgmm", "evaluate", "--checkpoint", str(best), "--out", str(out), "--no-progress"]
        print(f"[{run}] {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True)
        new = json.loads((out / "metrics.json").read_text())
        path = RES / run / "metrics.json"
        old = json.loads(path.read_text())
        # inference folds BatchNorm into the convolutions, so a pixel or two may flip: tolerated to 1e-4
        if abs(new["miou"] - old["miou"]) > 1e-4:
            raise SystemExit(f"[{run}] the re-evaluation's mIoU {new['miou']} differs from the run's {old['miou']}")
        for key in ("latent", "clustering", "clustering_active", "clustering_by_class"):
            if key in new:
                old[key] = new[key]
        old["latent_reevaluated"] = {"code": commit, "command": " ".join(cmd[1:]), "miou": new["miou"]}
        path.write_text(json.dumps(old, indent=2) + "\n")
        print(f"[{run}] latent measures replaced in {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
