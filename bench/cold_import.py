"""Cold import of the Lambda entry module (`app`) vs importing its dependencies alone.

The dependencies are exactly the third-party modules `import app` loads, imported in the
same order by a baseline script; each run is a fresh interpreter, alternating, median of N.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from bench.common import report
from chalicelib.local.processes import ROOT

_LIST = """
import sys
before = set(sys.modules)
import app
mine = ("app", "chalicelib")
print("\\n".join(m for m in sys.modules if m not in before
                 and not m.split(".")[0] in mine and not m.startswith("_")))
"""


def _third_party_modules() -> list[str]:
    out = subprocess.run([sys.executable, "-c", _LIST], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=_env()).stdout
    return [m for m in out.split() if m]


def _env() -> dict[str, str]:
    return {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "0"}


def _time(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=_env())
    return time.perf_counter() - started


def run() -> dict[str, float]:
    runs = int(os.environ.get("BENCH_IMPORT_RUNS", "9"))
    modules = _third_party_modules()
    baseline_code = (f"import importlib\nfor m in {modules!r}:\n    try:\n"
                     "        importlib.import_module(m)\n    except Exception:\n        pass\n")
    app_code = "import app"
    empty = "pass"
    _time(app_code)  # compile .pyc files once
    times: dict[str, list[float]] = {"app": [], "deps": [], "empty": []}
    for _ in range(runs):
        times["app"].append(_time(app_code))
        times["deps"].append(_time(baseline_code))
        times["empty"].append(_time(empty))
    median = {name: statistics.median(values) for name, values in times.items()}
    interpreter = median["empty"]
    result = {
        "app_s": median["app"], "deps_s": median["deps"], "python_s": interpreter,
        "ratio": (median["app"] - interpreter) / (median["deps"] - interpreter),
        "ratio_with_interpreter": median["app"] / median["deps"],
        "modules": float(len(modules)),
    }
    report(f"cold import of the Lambda entry module (median of {runs} fresh interpreters)", [
        ("python -c 'import app'", f"{median['app'] * 1000:.0f} ms"),
        (f"its {len(modules)} dependency modules alone", f"{median['deps'] * 1000:.0f} ms"),
        ("empty interpreter", f"{interpreter * 1000:.0f} ms"),
        ("ratio app / deps (interpreter start removed)", f"{result['ratio']:.2f}x"),
        ("ratio app / deps (whole process)", f"{result['ratio_with_interpreter']:.2f}x"),
    ])
    return result


if __name__ == "__main__":
    run()
