"""The dashboard in real headless Chromium: sign in, create from YAML, see validation errors,
watch trials live, follow a log, export CSV, compare, and what a viewer may not do."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.katib.dashboard.conftest import ADMIN_TOKEN, DashboardServer, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BAD_YAML = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: Bad_Name
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 0
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: "5", max: "1"}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers: [{name: main, image: x, command: [python3, "${trialParameters.x}"]}]
"""


def live_yaml(hold: str) -> str:
    return f"""\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: live
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm:
    algorithmName: random
    algorithmSettings: [{{name: random_state, value: "3"}}]
  parallelTrialCount: 2
  maxTrialCount: 4
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {{min: "-2", max: "3"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: python:3.11
                command: [python3, live.py, "${{trialParameters.x}}", "{hold}"]
"""


def test_sign_in(page: Any, server: DashboardServer) -> None:
    page.console.allow(r"status of 401")  # the wrong token, on purpose
    page.goto(f"{server.url}/")
    page.wait_for_selector("#token")
    assert page.title() == "Sign in · Katib"
    shot(page, "signin")
    page.fill("#token", "not-a-token")
    page.click("form button[type=submit]")
    page.wait_for_selector("text=unknown, revoked or expired")
    page.fill("#token", ADMIN_TOKEN)
    page.click("form button[type=submit]")
    page.wait_for_selector("a:text('cmp-a')")
    assert page.title() == "Experiments · Katib"
    assert ADMIN_TOKEN not in page.url
    assert page.evaluate("sessionStorage.getItem('katib.token')") == ADMIN_TOKEN
    shot(page, "experiments")
    # Keyboard: a new page takes the focus to its content; Tab reaches its first control.
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "filter"


def test_validation_errors_show_their_field_paths(page: Any, server: DashboardServer) -> None:
    sign_in(page, server, ADMIN_TOKEN, "/new")
    page.wait_for_selector("#valid")  # the sample is valid
    page.fill("#yaml", BAD_YAML)
    page.wait_for_selector("#errors li[data-path='spec.maxTrialCount']")
    paths = page.eval_on_selector_all("#errors li", "els => els.map(e => e.dataset.path)")
    assert "metadata.name" in paths
    assert any(p.startswith("spec.parameters[0].feasibleSpace") for p in paths)
    assert page.is_disabled("form button[type=submit]")
    assert page.title() == "New experiment · Katib"
    shot(page, "new-experiment-errors")


def test_create_watch_live_and_follow_a_log(page: Any, server: DashboardServer) -> None:
    server.hold.write_text("")
    try:
        sign_in(page, server, ADMIN_TOKEN, "/new")
        page.wait_for_selector("#valid")
        page.fill("#yaml", live_yaml(str(server.hold)))
        page.wait_for_selector("#valid")
        page.click("form button[type=submit]")
        page.wait_for_url("**/#/experiments/default/live")
        page.evaluate("window.__noReload = true")
        # Trials appear without a reload, Running while the hold file is there.
        page.wait_for_selector("tr[data-trial] .badge.s-Running", timeout=30_000)
        page.wait_for_function("() => Number(document.body.dataset.trials) >= 2", timeout=30_000)
        shot(page, "experiment-live")
        name = page.get_attribute("tr[data-trial]:has(.s-Running)", "data-trial")
        page.click(f"a:text('{name}')")
        page.wait_for_url(f"**/#/trials/default/{name}")
        page.wait_for_selector("#log:has-text('tick 3')")
        first = len(page.inner_text("#log"))
        page.wait_for_function(
            f"() => document.getElementById('log').textContent.length > {first + 20}"
        )
        shot(page, "trial-log-following")
        server.hold.unlink()
        page.wait_for_selector("#log:has-text('loss=')", timeout=30_000)
        page.wait_for_selector("h1 .badge.s-Succeeded", timeout=30_000)
        page.click("a:text('← live')")
        page.wait_for_selector("h1 .badge.s-Succeeded", timeout=60_000)
        page.wait_for_function("() => Number(document.body.dataset.trials) === 4")
        assert page.evaluate("window.__noReload") is True
        assert page.locator("tr.best").count() == 1
        shot(page, "experiment-finished")
    finally:
        server.hold.unlink(missing_ok=True)


def test_experiment_page_plots_and_csv_export(page: Any, server: DashboardServer) -> None:
    sign_in(page, server, ADMIN_TOKEN, "/experiments/default/cmp-a")
    page.wait_for_selector("#history canvas")
    page.wait_for_selector("canvas.parcoords")
    assert page.title() == "cmp-a · Katib"
    page.check("#logy")  # the history on a log scale (every loss is positive)
    page.wait_for_selector("#history canvas")
    page.click("th button:text('loss (objective)')")  # sort: the best trial comes first
    assert page.get_attribute("table[aria-label=Trials] tbody tr:first-child", "class") == "best"
    # Filter by state and by a parameter range.
    page.fill("[data-param-min='x1']", "0")
    page.fill("[data-param-max='x1']", "5")
    shown = page.inner_text(".tablewrap + .pager, .row.spread span.muted")
    with page.expect_download() as got:
        page.click("text=Export CSV")
    text = got.value.path().read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:4] == ["number", "Trial", "State", "loss"]
    assert {"x1", "x2", "lr", "optimizer", "accuracy"} <= set(rows[0])
    x1 = rows[0].index("x1")
    assert rows[1:] and all(0 <= float(r[x1]) <= 5 for r in rows[1:])
    assert f"{len(rows) - 1} of 60 trials" in page.inner_text("section[aria-label=Trials]"), shown
    for tab in ("importance", "slice", "contour", "curves"):
        page.click(f"#tab-{tab}")
        selector = {
            "curves": "[data-plot=curves] canvas",
            "importance": "[data-plot=importance] .barrow",
        }.get(tab, "#plotpanel .main-svg")
        page.wait_for_selector(selector, timeout=30_000)
        shot(page, f"experiment-plot-{tab}")
    shot(page, "experiment")


def test_compare_two_experiments(page: Any, server: DashboardServer) -> None:
    sign_in(page, server, ADMIN_TOKEN, "/experiments")
    page.check("input[aria-label='select default/cmp-a to compare']")
    page.check("input[aria-label='select default/cmp-b to compare']")
    page.click("text=Compare selected")
    page.wait_for_url("**/#/compare?e=default%2Fcmp-a,default%2Fcmp-b")
    page.wait_for_selector("#best-table tbody tr:nth-child(2)")
    assert page.title() == "Compare · Katib"
    diff = page.inner_text("#spec-diff")
    assert "algorithm" in diff and "random" in diff and "tpe" in diff
    assert page.locator("#cmp-trials canvas").count() == 1
    assert page.locator("#cmp-time canvas").count() == 1
    page.wait_for_selector("[data-plot=importance-compare] .barrow", timeout=30_000)
    page.wait_for_selector("[data-plot=dist-x1] svg rect", timeout=30_000)
    page.wait_for_selector("[data-plot=dist-optimizer] .stack span")
    shot(page, "compare")
    # The selection is in the URL: the same link opens the same comparison.
    url = page.url
    page.goto(f"{server.url}/#/experiments")
    page.goto(url)
    page.wait_for_selector("#best-table tbody tr:nth-child(2)")


def test_viewer_sees_no_actions_and_the_api_refuses_anyway(
    page: Any, server: DashboardServer
) -> None:
    page.console.allow(r"status of 403")  # the refused call below, on purpose
    sign_in(page, server, server.viewer, "/experiments")
    page.wait_for_selector("a:text('cmp-a')")
    assert page.locator("button:text-is('Archive')").count() == 0
    nav = page.inner_text("#nav")
    assert "New experiment" not in nav and "Access" not in nav
    page.goto(f"{server.url}/#/experiments/default/cmp-a")
    page.wait_for_selector("#history canvas")
    assert page.locator("#actions button, #actions summary").count() == 0
    shot(page, "viewer-experiment")
    status = page.evaluate(
        """async () => (await fetch('/api/v1/namespaces/default/experiments/cmp-a', {
            method: 'DELETE',
            headers: {Authorization: 'Bearer ' + sessionStorage.getItem('katib.token')},
        })).status"""
    )
    assert status == 403


def test_owner_gives_and_revokes_access(page: Any, server: DashboardServer) -> None:
    sign_in(page, server, ADMIN_TOKEN, "/access")
    page.wait_for_selector("#tokens")
    assert "vera" in page.inner_text("#tokens")
    page.fill("#tokname", "alice")
    page.select_option("#tokrole", "editor")
    page.select_option("#tokexp", "7")
    page.click("text=Create token")
    secret = page.inner_text("#new-token")
    assert secret.startswith("katib_")
    page.wait_for_selector("#tokens tr:has-text('alice')")
    shot(page, "access")
    page.on("dialog", lambda d: d.accept())
    page.click("#tokens tr:has-text('alice') button:text('Revoke')")
    page.wait_for_selector("#tokens tr:has-text('alice')", state="detached")
    page.click("text=Sign out")
    page.wait_for_selector("#audit", state="detached")
    sign_in(page, server, ADMIN_TOKEN, "/access")
    page.wait_for_selector("#audit td:text('token.revoke')")
    assert "token.create" in page.inner_text("#audit")


def test_a_revoked_token_is_signed_out(page: Any, server: DashboardServer) -> None:
    import httpx

    page.console.allow(r"status of 401")  # the revoked token's refusal, on purpose
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    made = httpx.post(f"{server.url}/api/v1/tokens", headers=admin,
                      json={"name": "temp", "namespace": "default", "role": "editor"}).json()
    sign_in(page, server, made["token"], "/experiments")
    page.wait_for_selector("a:text('cmp-a')")
    revoked = httpx.delete(f"{server.url}/api/v1/tokens/{made['id']}", headers=admin)
    assert revoked.status_code == 204
    page.reload()
    page.wait_for_selector("#token")
    assert page.evaluate("sessionStorage.getItem('katib.token')") is None


def test_edit_the_budget_and_stop_a_running_experiment(page: Any, server: DashboardServer) -> None:
    import httpx

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    server.hold.write_text("")
    try:
        doc = live_yaml(str(server.hold)).replace("name: live", "name: stoppable")
        made = httpx.post(f"{server.url}/api/v1/namespaces/default/experiments",
                          headers={**admin, "Content-Type": "application/yaml"}, content=doc)
        assert made.status_code == 201, made.text
        editor = httpx.post(f"{server.url}/api/v1/tokens", headers=admin, json={
            "name": "eddie", "namespace": "default", "role": "editor"}).json()["token"]
        sign_in(page, server, editor, "/experiments/default/stoppable")
        page.wait_for_selector("tr[data-trial] .badge.s-Running", timeout=30_000)
        assert page.locator("#actions button:text('Delete')").count() == 0  # owners only
        page.click("summary:text('Edit budget…')")
        page.fill("input[name=maxTrialCount]", "6")
        page.click("button:text('Save budget')")
        page.wait_for_selector("text=budget of stoppable changed")
        spec = httpx.get(f"{server.url}/api/v1/namespaces/default/experiments/stoppable",
                         headers=admin).json()["spec"]
        assert spec["maxTrialCount"] == 6
        page.wait_for_selector(".card:has-text('/ 6')")  # the page shows the new budget
        assert "max 6 trials" in page.inner_text("body")
        page.click("#actions button:text('Stop')")
        page.wait_for_selector("h1 .badge.s-Succeeded", timeout=30_000)
        assert page.locator("#actions button:text('Stop')").count() == 0
        shot(page, "experiment-stopped")
        audit = httpx.get(f"{server.url}/api/v1/audit?namespace=default", headers=admin).json()
        done = [(a["action"], a["principal"]["name"]) for a in audit["items"][:3]]
        assert ("experiment.stop", "eddie") in done and ("experiment.budget", "eddie") in done
    finally:
        server.hold.unlink(missing_ok=True)
