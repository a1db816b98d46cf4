"""Browser timings: runs the Playwright tests against `streamlit run`, prints what they measured.

python bench/bench_browser.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    out = ROOT / "test-artifacts" / "browser_timings.json"
    out.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_browser.py"], cwd=ROOT, check=True)
    t = json.loads(out.read_text())
    for key in sorted(k for k in t if k.startswith("first_render")):
        print(f"{key} (seconds, page fully rendered):")
        for page, s in t[key].items():
            print(f"  {page:<16}{s:6.2f}")
    print(f"recommendation update after changing the user: {t['recommendation_update_s']:.2f} s")
    print(f"webcam frames processed per second (fake 15 fps camera): {t['webcam_fps']:.1f}")


if __name__ == "__main__":
    main()
