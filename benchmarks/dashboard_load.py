"""The dashboard with 10,000 trials in Chromium, side by side with optuna-dashboard.

    python benchmarks/dashboard_load.py [--trials 10000] [--runs 5] [--no-optuna] [--append]

Needs ``pip install -e '.[bench]'`` (optuna-dashboard, Playwright) and Debian's Chromium
(``.ci/chromium.sh``).

In one run: three experiments of ``--trials`` finished trials each are written straight into
a fresh SQLite database and served by ``katib server``; the same trials (same parameters and
values, from the same random sequence) go into an Optuna study served by
``optuna-dashboard`` (JournalFileStorage, Optuna's fastest to fill). Each run opens a fresh
browser context (empty cache) in Debian's Chromium, 1280×720, and measures:

* time to table + history: from navigation start until both are drawn (Katib: the page's
  ``katib:history`` performance mark, set after the table and then the history plot are in
  the DOM; optuna-dashboard, whose trial table is a page of its own: until its history plot
  has points, and separately until its Trials (List) page has rows), both also seen by a
  MutationObserver in the page (the ``observer`` row);
* bytes on the wire (encoded sizes from the DevTools protocol) until then, and once the page
  is idle;
* the longest task (PerformanceObserver ``longtask``) until idle;
* a live update: one trial is written into the database of the Running experiment (driven,
  as far as the server knows, by another controller: this process); the time until the
  page shows it (the page polls every 1.5 s, so half of that is waiting on average) and the
  bytes of each poll;
* Katib's compare page with the three experiments: until curves, best table and spec diff
  are drawn (``katib:compare`` mark).

Medians over ``--runs``; ``--append`` adds the table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import MetaData, insert, update  # noqa: E402

from katib.storage import Storage  # noqa: E402
from tests.katib.dashboard.seed import seed, trial_row  # noqa: E402

TOKEN = "bench-admin-token-0123456789abcdef"
CHROMIUM = os.environ.get("KATIB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Records, in the page, when every selector in window.__want first matches (or, for a
# [selector, n] pair, matches n elements), seen by a MutationObserver:
# the same clock for both dashboards, without the test driver's polling delay.
SEEN = """
window.__seen = null;
new MutationObserver((_, observer) => {
  const want = window.__want || [];
  const found = (w) => (Array.isArray(w) ? document.querySelectorAll(w[0]).length >= w[1]
                                          : document.querySelector(w) !== null);
  if (window.__seen === null && want.length && want.every(found)) {
    window.__seen = performance.now();
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""
LONGTASKS = """
window.__long = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__long.push(e.duration);
}).observe({ type: "longtask", buffered: true });
"""


def start(cmd: list[str], env: dict[str, str], log: Path, ready: Callable[[str], str | None],
          cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = ready(log.read_text(errors="replace"))
        if found:
            return proc, found
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text()}")


class Wire:
    """Bytes received by a page (DevTools Network events), per request URL."""

    def __init__(self, context: Any, page: Any) -> None:
        self.urls: dict[str, str] = {}
        self.done: list[tuple[float, str, int]] = []
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on("Network.requestWillBeSent",
               lambda e: self.urls.__setitem__(e["requestId"], e["request"]["url"]))
        cdp.on("Network.loadingFinished", lambda e: self.done.append(
            (time.monotonic(), self.urls.get(e["requestId"], "?"), int(e["encodedDataLength"]))))

    def total(self, since: float = 0.0, match: str = "") -> int:
        return sum(n for t, u, n in self.done if t >= since and match in u)


def katib_run(browser: Any, url: str, db: Storage, experiment_id: int, n: int) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    want = "window.__want = ['#history canvas', 'table[aria-label=Trials] tbody tr'];"
    context.add_init_script(
        f"sessionStorage.setItem('katib.token', '{TOKEN}');" + want + SEEN + LONGTASKS
    )
    page = context.new_page()
    wire = Wire(context, page)
    page.goto(f"{url}/#/experiments/default/bench-a")
    page.wait_for_selector("#history canvas", timeout=120_000)
    page.wait_for_selector("table[aria-label=Trials] tbody tr")
    page.wait_for_function("() => window.__seen !== null")
    dom_ms = page.evaluate("() => window.__seen")
    first_bytes = wire.total()
    mark = page.evaluate("() => performance.getEntriesByName('katib:history')[0].startTime")
    table_mark = page.evaluate("() => performance.getEntriesByName('katib:table')[0].startTime")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)
    idle_bytes = wire.total()
    longest = max(page.evaluate("() => window.__long"), default=0.0)
    # A live update: one more trial in the database.
    before = int(page.evaluate("() => document.body.dataset.trials"))
    add_trial(db, experiment_id, n + before)
    t0 = time.monotonic()
    page.wait_for_function(f"() => Number(document.body.dataset.trials) === {before + 1}",
                           timeout=30_000)
    update_s = time.monotonic() - t0
    page.wait_for_timeout(300)
    update_bytes = wire.total(since=t0, match="trial-table")
    polls = max(1, sum(1 for t, u, _ in wire.done if t >= t0 and "trial-table" in u))
    long_after = max(page.evaluate("() => window.__long"), default=0.0)
    context.close()
    return {"first_ms": mark, "table_ms": table_mark, "dom_ms": dom_ms, "first_bytes": first_bytes,
            "idle_bytes": idle_bytes, "longest_ms": max(longest, long_after),
            "update_s": update_s, "update_bytes": update_bytes / polls}


def compare_run(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(f"sessionStorage.setItem('katib.token', '{TOKEN}');" + LONGTASKS)
    page = context.new_page()
    wire = Wire(context, page)
    page.goto(f"{url}/#/compare?e=default%2Fbench-a,default%2Fbench-b,default%2Fbench-c")
    page.wait_for_function("() => performance.getEntriesByName('katib:compare').length > 0",
                           timeout=120_000)
    ms = page.evaluate("() => performance.getEntriesByName('katib:compare')[0].startTime")
    first = wire.total()
    page.wait_for_function("() => performance.getEntriesByName('katib:compare-all').length > 0",
                           timeout=180_000)
    everything = page.evaluate(
        "() => performance.getEntriesByName('katib:compare-all')[0].startTime")
    longest = max(page.evaluate("() => window.__long"), default=0.0)
    total = wire.total()
    context.close()
    return {"compare_ms": ms, "compare_bytes": first, "compare_all_ms": everything,
            "compare_all_bytes": total, "compare_longest_ms": longest}


def optuna_run(browser: Any, url: str, study: Any, n: int) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(
        "window.__want = ['#plot-history .scatterlayer .point'];" + SEEN + LONGTASKS
    )
    page = context.new_page()
    wire = Wire(context, page)
    page.goto(f"{url}/dashboard/studies/{study._study_id}")
    page.wait_for_selector("#plot-history .scatterlayer .point", timeout=180_000)
    page.wait_for_function("() => window.__seen !== null")
    dom_ms = page.evaluate("() => window.__seen")
    first_bytes = wire.total()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)
    idle_bytes = wire.total()
    longest = max(page.evaluate("() => window.__long"), default=0.0)
    # Its page polls /api/studies/<id>?after=<n> (when "Live Update" is on, the default):
    # the time until the first poll after the new trial has come back.
    add_optuna_trial(study, n + 1)
    t0 = time.monotonic()
    deadline = t0 + 60
    while time.monotonic() < deadline and not wire.total(since=t0, match="/api/studies/"):
        page.wait_for_timeout(50)
    update_s = time.monotonic() - t0 if wire.total(since=t0, match="/api/") else float("nan")
    page.wait_for_timeout(300)
    polls = max(1, sum(1 for t, u, _ in wire.done if t >= t0 and "/api/studies/" in u))
    update_bytes = wire.total(since=t0, match="/api/studies/") / polls
    context.close()
    # Its trial table is a page of its own (Trials (List)): timed in a fresh context too.
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(
        "window.__want = [['.MuiListItemButton-root', 20]];" + SEEN
    )
    page = context.new_page()
    page.goto(f"{url}/dashboard/studies/{study._study_id}/trials")
    page.wait_for_function("() => window.__seen !== null", timeout=180_000)
    list_ms = page.evaluate("() => window.__seen")
    context.close()
    return {"first_ms": dom_ms, "dom_ms": dom_ms, "list_ms": list_ms, "first_bytes": first_bytes,
            "idle_bytes": idle_bytes, "longest_ms": longest, "update_s": update_s,
            "update_bytes": update_bytes}


def add_trial(db: Storage, experiment_id: int, k: int) -> None:
    meta = MetaData()
    meta.reflect(db.engine, only=["trials"])
    row = trial_row(experiment_id, "default", "bench-a", random.Random(k), time.time(),
                    state="Succeeded")
    with db.engine.begin() as conn:
        conn.execute(insert(meta.tables["trials"]), [row])


def optuna_trials(n: int, seed_value: int) -> list[Any]:
    """The trials :func:`seed` writes for bench-a, as Optuna trials (same draws)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space = {"x1": FloatDistribution(-5, 10), "x2": FloatDistribution(0, 15),
             "lr": FloatDistribution(1e-4, 0.1, log=True),
             "optimizer": CategoricalDistribution(["adam", "sgd", "rmsprop"])}
    rng = random.Random(seed_value)
    out = []
    for i in range(n):
        row = trial_row(1, "default", "bench-a", rng, time.time() + i * 0.25)
        a = row["assignments"]
        params = {"x1": float(a["x1"]), "x2": float(a["x2"]), "lr": float(a["lr"]),
                  "optimizer": a["optimizer"]}
        if row["objective"] is None:
            out.append(optuna.trial.create_trial(
                params=params, distributions=space, state=optuna.trial.TrialState.FAIL))
        else:
            out.append(optuna.trial.create_trial(params=params, distributions=space,
                                                 value=row["objective"]))
    return out


def add_optuna_trial(study: Any, k: int) -> None:
    trial = optuna_trials(1, k)[0]
    study.add_trial(trial)


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs if key in r)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-optuna", action="store_true")
    parser.add_argument("--append", action="store_true", help="append to RESULTS.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="katib-dash-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        home = tmp / "home"
        db = Storage.open(f"sqlite:///{home / 'katib.db'}")
        t = time.monotonic()
        ids = [seed(db, f"bench-{c}", args.trials, seed=k + 1, curves=200)
               for k, c in enumerate("abc")]
        print(f"seeded 3 × {args.trials} trials in {time.monotonic() - t:.1f} s", flush=True)
        # bench-a is Running, driven by "another controller" (this process, as `katib run`
        # would): the page polls it as a live experiment, and the server leaves it alone.
        meta = MetaData()
        meta.reflect(db.engine, only=["experiments"])
        experiments = meta.tables["experiments"]
        with db.engine.begin() as conn:
            conn.execute(update(experiments).where(experiments.c.id == ids[0]).values(
                condition="Running", completed_at=None, owner=f"{socket.gethostname()}:"
                f"{os.getpid()}:benchmark", owner_heartbeat=time.time()))
        env = dict(os.environ, KATIB_HOME=str(home), KATIB_ADMIN_TOKEN=TOKEN,
                   PYTHONPATH=str(REPO))
        proc, url = start([sys.executable, "-m", "katib", "server", "--port", "0"], env,
                          tmp / "katib.log",
                          lambda s: m.group(1) if (m := re.search(r"on (http://\S+)", s)) else None,
                          tmp)
        procs.append(proc)
        study = None
        od_url = ""
        if not args.no_optuna:
            import optuna
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            journal = tmp / "optuna.log"
            study = optuna.create_study(
                storage=JournalStorage(JournalFileBackend(str(journal))), study_name="bench-a")
            t = time.monotonic()
            study.add_trials(optuna_trials(args.trials, 1))
            print(f"optuna study filled in {time.monotonic() - t:.1f} s", flush=True)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            beside = Path(sys.executable).parent / "optuna-dashboard"
            dash = str(beside) if beside.exists() else shutil.which("optuna-dashboard") or ""
            proc, od_url = start(
                [dash, str(journal), "--storage-class", "JournalFileStorage", "--port",
                 str(port)], dict(os.environ), tmp / "optuna.log.out",
                lambda s: f"http://127.0.0.1:{port}" if "Listening on" in s or
                "Serving on" in s or "running on" in s.lower() else None, tmp)
            procs.append(proc)
        katib_runs: list[dict[str, float]] = []
        compare_runs: list[dict[str, float]] = []
        optuna_runs: list[dict[str, float]] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            # A first page in a new browser pays for starting its renderer: not either
            # dashboard's cost.
            warm = browser.new_context()
            warm.new_page().goto("data:text/html,<title>warm</title><p>warm")
            warm.close()
            for r in range(args.runs):
                k = katib_run(browser, url, db, ids[0], args.trials + r)
                katib_runs.append(k)
                c = compare_run(browser, url)
                compare_runs.append(c)
                print(f"run {r + 1}: katib {k['first_ms']:.0f} ms, {k['first_bytes'] / 1e3:.0f} kB,"
                      f" update {k['update_s']:.2f} s / {k['update_bytes'] / 1e3:.1f} kB, longest "
                      f"{k['longest_ms']:.0f} ms; compare {c['compare_ms']:.0f} ms", flush=True)
                if study is not None:
                    o = optuna_run(browser, od_url, study, args.trials + r)
                    optuna_runs.append(o)
                    print(f"        optuna-dashboard {o['first_ms']:.0f} ms, "
                          f"{o['first_bytes'] / 1e3:.0f} kB, update {o['update_s']:.2f} s",
                          flush=True)
            browser.close()
        report = render(args, katib_runs, compare_runs, optuna_runs)
        print(report)
        if args.append:
            with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
                f.write("\n" + report)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def render(args: argparse.Namespace, k: list[dict[str, float]], c: list[dict[str, float]],
           o: list[dict[str, float]]) -> str:
    def ms(v: float) -> str:
        return f"{v:,.0f} ms"

    def kb(v: float) -> str:
        return f"{v / 1000:,.1f} kB"

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.1f}×" if a and b == b else "—"

    load = os.getloadavg()[0]
    rows = [
        ("table + history drawn (mark)", ms(median(k, "first_ms")), "", "≤ 1 s",
         median(k, "first_ms") <= 1000),
        ("… first run only (server's answer cache cold)", ms(k[0]["first_ms"]),
         ms(o[0]["dom_ms"]) if o else "", "≤ 1 s", k[0]["first_ms"] <= 1000),
        ("table + history in the DOM (observer; optuna: its history plot)", ms(median(k, "dom_ms")),
         ms(median(o, "dom_ms")) if o else "", "≤ 1 s", median(k, "dom_ms") <= 1000),
        ("trials table drawn (optuna: its Trials (List) page)", ms(median(k, "table_ms")),
         ms(median(o, "list_ms")) if o else "", "", None),
        ("bytes until drawn", kb(median(k, "first_bytes")),
         kb(median(o, "first_bytes")) if o else "", "≤ 2 MB", median(k, "first_bytes") <= 2e6),
        ("bytes once idle", kb(median(k, "idle_bytes")),
         kb(median(o, "idle_bytes")) if o else "", "≤ 2 MB", median(k, "idle_bytes") <= 2e6),
        ("longest task", ms(median(k, "longest_ms")), ms(median(o, "longest_ms")) if o else "",
         "≤ 200 ms", median(k, "longest_ms") <= 200),
        ("live update: one new trial shown (optuna: fetched)", f"{median(k, 'update_s'):.2f} s",
         f"{median(o, 'update_s'):.2f} s" if o else "", "", None),
        ("live update: bytes per poll", kb(median(k, "update_bytes")),
         kb(median(o, "update_bytes")) if o else "", "≤ 50 kB", median(k, "update_bytes") <= 50e3),
        ("compare, 3 experiments: curves + best + diff", ms(median(c, "compare_ms")), "", "≤ 2 s",
         median(c, "compare_ms") <= 2000),
        ("… first run only (server's answer cache cold)", ms(c[0]["compare_ms"]), "", "≤ 2 s",
         c[0]["compare_ms"] <= 2000),
        ("compare: bytes until then", kb(median(c, "compare_bytes")), "", "", None),
        ("compare: also importances + distributions", ms(median(c, "compare_all_ms")), "", "",
         None),
        ("compare: longest task", ms(median(c, "compare_longest_ms")), "", "", None),
    ]
    out = [
        "## Dashboard load with 10,000 trials (issue: Dashboard)",
        "",
        f"Command: `python benchmarks/dashboard_load.py --trials {args.trials} --runs {args.runs}`"
        f" — Debian Chromium headless at 1280×720, fresh context (empty cache) per run, "
        f"server and browser on the same 2-CPU machine (load average {load:.1f} at the end), "
        f"Python {platform.python_version()}; medians of {args.runs} runs. optuna-dashboard "
        "served the same trials from a JournalFileStorage study.",
        "",
        "| measurement | katib dashboard | optuna-dashboard | ratio | target | met |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for name, ours, theirs, target, met in rows:
        r = ""
        if theirs and ("ms" in ours or " s" in ours):
            a = float(ours.split()[0].replace(",", ""))
            b = float(theirs.split()[0].replace(",", ""))
            r = ratio(a, b)
        elif theirs and "kB" in ours:
            a = float(ours.split()[0].replace(",", ""))
            b = float(theirs.split()[0].replace(",", ""))
            r = ratio(a, b)
        flag = "" if met is None else ("yes" if met else "**no**")
        out.append(f"| {name} | {ours} | {theirs} | {r} | {target} | {flag} |")
    out.append("")
    out.append("Ratio: optuna-dashboard's figure over ours (above 1: ours is faster or smaller).")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
