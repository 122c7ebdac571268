"""The KFP launcher against a loopback KFP API server (kfp_server.py, after KFP's v2beta1
OpenAPI): runs created from a pipeline version or an uploaded package, parameters typed as
the pipeline declares them, metrics from metric artifacts, and every way a run ends."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.spec import MetricsCollectorSpec
from tests.trial_runner.pipelines.kfp_server import FakeKfp, Script, pipeline_spec
from trial_runner import (
    CollectionPlan,
    Ending,
    KillReason,
    TrialEnded,
    TrialEvent,
    TrialLaunch,
    TrialStarted,
)
from trial_runner.local import LocalProcessLauncher
from trial_runner.pipelines import (
    KfpLauncher,
    KfpRunTemplate,
    KfpTemplateError,
    KindDispatcher,
    is_kfp_run,
    with_pipeline_runs,
)


class Sink:
    def __init__(self) -> None:
        self.events: queue.Queue[TrialEvent] = queue.Queue()
        self.seen: list[TrialEvent] = []

    def __call__(self, event: TrialEvent) -> None:
        self.events.put(event)

    def until_end(self, timeout: float = 20) -> TrialEnded:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(event)
            if isinstance(event, TrialEnded):
                return event
        pytest.fail(f"no TrialEnded within {timeout}s: {self.seen}")

    def wait_started(self, timeout: float = 10) -> TrialStarted:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(event)
            if isinstance(event, TrialStarted):
                return event
            if isinstance(event, TrialEnded):
                pytest.fail(f"ended before it started: {event}")
        pytest.fail(f"not started within {timeout}s")


def run_manifest(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "pipelines.kubeflow.org/v2beta1", "kind": "Run", "spec": spec}


def launch_of(manifest: dict[str, Any], *, trial: str = "exp-abc", collector: str | None = None,
              source_dir: str = ".", push_env: dict[str, str] | None = None) -> TrialLaunch:
    spec = None if collector is None else MetricsCollectorSpec.model_validate(
        {"collector": {"kind": collector}}
    )
    return TrialLaunch(
        namespace="team", experiment="exp", trial=trial, manifest=manifest,
        primary_container="pipeline", assignments={"lr": "0.01"},
        push_env=push_env or {}, collection=CollectionPlan(("accuracy", "loss"), spec),
        source_dir=source_dir,
    )


@pytest.fixture
def launcher(fake_kfp: FakeKfp) -> KfpLauncher:
    made = KfpLauncher(fake_kfp.url, poll_interval=0.02)
    yield made
    made.close()


def by_version(fake: FakeKfp, **params: Any) -> dict[str, Any]:
    pipeline_id, version_id = fake.add_pipeline(
        "tune-me", pipeline_spec(lr="NUMBER_DOUBLE", epochs="NUMBER_INTEGER", opt="STRING",
                                 shuffle="BOOLEAN"))
    return run_manifest({"run": {
        "pipeline_version_reference": {"pipeline_id": pipeline_id,
                                       "pipeline_version_id": version_id},
        "runtime_config": {"parameters": params},
    }})


def test_a_run_from_a_pipeline_version_succeeds_with_its_metric_artifacts(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    fake_kfp.behave = lambda p: Script(metrics={"accuracy": 0.93, "loss": 0.2, "other": 1.0})
    sink = Sink()
    manifest = by_version(fake_kfp, lr="0.01", epochs="3", opt="adam", shuffle="true")
    launcher.launch(launch_of(manifest), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.COMPLETED, ended
    assert sorted((o.name, o.value) for o in ended.observations) == [
        ("accuracy", 0.93), ("loss", 0.2)
    ]
    assert any(isinstance(e, TrialStarted) for e in sink.seen)
    (body,) = fake_kfp.run_bodies()
    assert body["display_name"] == "exp-abc"
    # Katib substitutes text; the pipeline declares types, and KFP checks them.
    assert body["runtime_config"]["parameters"] == {
        "lr": 0.01, "epochs": 3, "opt": "adam", "shuffle": True
    }


def test_metrics_from_a_system_metrics_artifact_metadata(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    fake_kfp.behave = lambda p: Script(metrics={"accuracy": 0.5}, artifact_style="metadata")
    sink = Sink()
    launcher.launch(launch_of(by_version(fake_kfp, lr="0.1")), sink)
    ended = sink.until_end()
    assert [(o.name, o.value) for o in ended.observations] == [("accuracy", 0.5)]


def test_a_compiled_package_is_uploaded_once_and_run_by_every_trial(
    fake_kfp: FakeKfp, launcher: KfpLauncher, tmp_path: Path
) -> None:
    (tmp_path / "pipeline.yaml").write_text(
        yaml.safe_dump(pipeline_spec(lr="NUMBER_DOUBLE", katib_trial_name="STRING",
                                     katib_api_url="STRING", katib_api_token="STRING"))
        + "---\nplatforms: {}\n"
    )
    fake_kfp.behave = lambda p: Script(metrics={"accuracy": 1 - p["lr"]})
    manifest = run_manifest({"pipelinePackage": "pipeline.yaml",
                             "run": {"runtime_config": {"parameters": {"lr": "0.25"}}}})
    sinks = [Sink() for _ in range(3)]
    for i, sink in enumerate(sinks):
        launcher.launch(
            launch_of(manifest, trial=f"exp-{i}", source_dir=str(tmp_path),
                      push_env={"KATIB_API_URL": "http://katib:8080", "KATIB_API_TOKEN": "t"}),
            sink,
        )
    for sink in sinks:
        ended = sink.until_end()
        assert ended.ending == Ending.COMPLETED
        assert [(o.name, o.value) for o in ended.observations] == [("accuracy", 0.75)]
    assert fake_kfp.uploads == 1
    bodies = fake_kfp.run_bodies()
    assert len({b["pipeline_version_reference"]["pipeline_version_id"] for b in bodies}) == 1
    # The push environment reaches the steps as the parameters the pipeline declares.
    params = bodies[0]["runtime_config"]["parameters"]
    assert params["katib_api_url"] == "http://katib:8080" and params["katib_api_token"] == "t"
    assert params["katib_trial_name"] in {"exp-0", "exp-1", "exp-2"}
    assert "katib_namespace" not in params  # not declared by this pipeline

    # A second launcher (a restarted controller) finds the upload by its name.
    again = KfpLauncher(fake_kfp.url, poll_interval=0.02)
    sink = Sink()
    again.launch(launch_of(manifest, trial="exp-9", source_dir=str(tmp_path)), sink)
    assert sink.until_end().ending == Ending.COMPLETED
    assert fake_kfp.uploads == 1
    again.close()


def test_a_failed_run_fails_the_trial_with_kfps_message(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    fake_kfp.behave = lambda p: Script(end="fail", message="train: exit status 3")
    sink = Sink()
    launcher.launch(launch_of(by_version(fake_kfp, lr="0.1")), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.FAILED
    assert "train: exit status 3" in ended.message and "run-" in ended.message


def test_a_run_without_metrics_completes_with_no_observations(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    # The controller makes this MetricsUnavailable (test_kfp_experiment.py).
    fake_kfp.behave = lambda p: Script(metrics={})
    sink = Sink()
    launcher.launch(launch_of(by_version(fake_kfp, lr="0.1")), sink)
    ended = sink.until_end()
    assert (ended.ending, list(ended.observations)) == (Ending.COMPLETED, [])


def test_a_run_cancelled_in_kfp_is_killed_by_the_user(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    fake_kfp.behave = lambda p: Script(end="cancel")
    sink = Sink()
    launcher.launch(launch_of(by_version(fake_kfp, lr="0.1")), sink)
    ended = sink.until_end()
    assert (ended.ending, ended.kill_reason) == (Ending.KILLED, KillReason.USER)
    assert "cancelled in Kubeflow Pipelines" in ended.message
    assert fake_kfp.terminated == []


def test_killing_a_trial_terminates_its_run(fake_kfp: FakeKfp, launcher: KfpLauncher) -> None:
    fake_kfp.behave = lambda p: Script(end="hang")
    sink = Sink()
    launcher.launch(launch_of(by_version(fake_kfp, lr="0.1")), sink)
    sink.wait_started()
    launcher.kill("exp-abc", KillReason.EARLY_STOPPED, "behind the median")
    ended = sink.until_end()
    assert (ended.ending, ended.kill_reason) == (Ending.KILLED, KillReason.EARLY_STOPPED)
    assert ended.message == "behind the median"
    (run_id,) = fake_kfp.terminated
    assert fake_kfp.runs[run_id].body["state"] == "CANCELED"
    launcher.kill("exp-abc", KillReason.USER)  # ended: nothing happens


def test_kill_all_terminates_every_run(fake_kfp: FakeKfp, launcher: KfpLauncher) -> None:
    fake_kfp.behave = lambda p: Script(end="hang")
    sinks = [Sink() for _ in range(2)]
    for i, sink in enumerate(sinks):
        launcher.launch(launch_of(by_version(fake_kfp, lr="0.1"), trial=f"t-{i}"), sink)
        sink.wait_started()
    launcher.kill_all(KillReason.INTERRUPTED, wait=10)
    assert {s.until_end().kill_reason for s in sinks} == {KillReason.INTERRUPTED}
    assert len(fake_kfp.terminated) == 2


def test_an_unavailable_api_server_is_retried(fake_kfp: FakeKfp, launcher: KfpLauncher) -> None:
    fake_kfp.behave = lambda p: Script(metrics={"accuracy": 0.9})
    manifest = by_version(fake_kfp, lr="0.1")
    fake_kfp.unavailable = 3
    sink = Sink()
    launcher.launch(launch_of(manifest), sink)
    assert sink.until_end().ending == Ending.COMPLETED


@pytest.mark.parametrize(
    ("params", "message"),
    [({"lr": "fast"}, "not a NUMBER_DOUBLE"), ({"epochs": "2.5"}, "not a NUMBER_INTEGER"),
     ({"nope": "1"}, "is not declared by the pipeline")],
)
def test_bad_parameters_do_not_start(
    fake_kfp: FakeKfp, launcher: KfpLauncher, params: dict[str, str], message: str
) -> None:
    sink = Sink()
    launcher.launch(launch_of(by_version(fake_kfp, **params)), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.NOT_STARTED and message in ended.message, ended


def test_file_collectors_do_not_apply_to_runs(fake_kfp: FakeKfp, launcher: KfpLauncher) -> None:
    sink = Sink()
    launcher.launch(launch_of(by_version(fake_kfp, lr="1"), collector="TensorFlowEvent"), sink)
    ended = sink.until_end()
    assert (ended.ending, ended.reason) == (Ending.NOT_STARTED, "MetricsCollectorError")


def test_no_host_and_no_pipeline_are_explained() -> None:
    sink = Sink()
    KfpLauncher(None).launch(launch_of(run_manifest({"pipelinePackage": "p.yaml"})), sink)
    assert "KFP_HOST" in sink.until_end().message
    with pytest.raises(KfpTemplateError, match="pipelinePackage"):
        KfpRunTemplate.parse(run_manifest({"run": {}}))
    with pytest.raises(KfpTemplateError, match="exclude each other"):
        KfpRunTemplate.parse(run_manifest({
            "pipelinePackage": "p.yaml",
            "run": {"pipeline_version_reference": {"pipeline_id": "a",
                                                   "pipeline_version_id": "b"}}}))


def test_the_dispatcher_sends_runs_to_kfp_and_the_rest_to_the_default(tmp_path: Path) -> None:
    default = LocalProcessLauncher(tmp_path)
    kfp = KfpLauncher("http://127.0.0.1:9")
    dispatcher = with_pipeline_runs(default, kfp)
    assert isinstance(dispatcher, KindDispatcher)
    assert dispatcher.launcher_for(run_manifest({})) is kfp
    assert dispatcher.launcher_for({"apiVersion": "batch/v1", "kind": "Job"}) is default
    assert dispatcher.retries_failures is default.retries_failures
    assert is_kfp_run({"apiVersion": "pipelines.kubeflow.org/v1", "kind": "Run"})
    assert not is_kfp_run({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"})


def test_kfp_api_refusals_are_the_trials_message(fake_kfp: FakeKfp, launcher: KfpLauncher) -> None:
    manifest = by_version(fake_kfp, lr="0.1")
    fake_kfp.token = "secret"
    sink = Sink()
    launcher.launch(launch_of(manifest), sink)
    ended = sink.until_end()
    assert (ended.ending, ended.reason) == (Ending.NOT_STARTED, "KfpApiError")
    assert "401 Unauthenticated" in ended.message

    authorized = KfpLauncher(fake_kfp.url, token="secret", poll_interval=0.02)
    sink = Sink()
    authorized.launch(launch_of(manifest, trial="exp-ok"), sink)
    assert sink.until_end().ending == Ending.COMPLETED
    authorized.close()


def test_an_unknown_pipeline_version_and_a_bad_package_do_not_start(
    fake_kfp: FakeKfp, launcher: KfpLauncher, tmp_path: Path
) -> None:
    sink = Sink()
    launcher.launch(launch_of(run_manifest({"run": {"pipeline_version_reference": {
        "pipeline_id": "nope", "pipeline_version_id": "v-0"}}})), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.NOT_STARTED and "not found" in ended.message, ended
    for name, text in (("missing.yaml", None), ("notes.yaml", "just: notes\n"),
                       ("broken.yaml", "a: [b\n")):
        if text is not None:
            (tmp_path / name).write_text(text)
        sink = Sink()
        launcher.launch(launch_of(run_manifest({"pipelinePackage": name}), trial=f"t-{name}",
                                  source_dir=str(tmp_path)), sink)
        ended = sink.until_end()
        assert (ended.ending, ended.reason) == (Ending.NOT_STARTED, "InvalidTrialTemplate")
        assert name in ended.message, ended
        if text is None:
            assert "compile the pipeline first" in ended.message


class Recording(LocalProcessLauncher):
    """A launcher that records what it is asked, and ends each trial at once."""

    def __init__(self, root: Path, adopts: bool = False) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []
        self.adopts = adopts

    def launch(self, launch: TrialLaunch, sink: Any) -> None:
        self.calls.append(("launch", launch.trial))

    def adopt(self, launch: TrialLaunch, sink: Any) -> bool:
        self.calls.append(("adopt", launch.trial))
        return self.adopts

    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        self.calls.append(("kill", trial))


def test_the_dispatcher_sends_kills_to_the_launcher_that_took_the_trial(
    tmp_path: Path,
) -> None:
    default, runs = Recording(tmp_path / "a"), Recording(tmp_path / "b", adopts=True)
    dispatcher = KindDispatcher(default, [(is_kfp_run, runs)])
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}
    dispatcher.launch(launch_of(job, trial="j"), Sink())
    dispatcher.launch(launch_of(run_manifest({}), trial="r"), Sink())
    assert not dispatcher.adopt(launch_of(job, trial="j2"), Sink())
    assert dispatcher.adopt(launch_of(run_manifest({}), trial="r2"), Sink())
    for trial in ("j", "r", "j2", "r2", "unknown"):
        dispatcher.kill(trial, KillReason.USER)
    assert default.calls == [("launch", "j"), ("adopt", "j2"), ("kill", "j")]
    assert runs.calls == [("launch", "r"), ("adopt", "r2"), ("kill", "r"), ("kill", "r2")]


def left_behind(fake: FakeKfp, manifest: dict[str, Any], trial: str = "exp-abc") -> str:
    """A run that a controller created for ``trial`` before it died: created through the API
    as the launcher creates runs (named after the trial), then left alone."""
    from trial_runner.pipelines import KfpApi

    api = KfpApi(fake.url)
    try:
        run = manifest["spec"]["run"]
        body = {**run, "display_name": trial, "runtime_config": {"parameters": {
            k: float(v) for k, v in run["runtime_config"]["parameters"].items()}}}
        return str(api.create_run(body)["run_id"])
    finally:
        api.close()


def test_a_new_controller_adopts_the_run_a_dead_one_left(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    fake_kfp.behave = lambda p: Script(metrics={"accuracy": 0.8}, reads_until_end=3)
    manifest = by_version(fake_kfp, lr="0.01")
    other = left_behind(fake_kfp, manifest, trial="exp-other")
    run_id = left_behind(fake_kfp, manifest)
    sink = Sink()
    assert launcher.adopt(launch_of(manifest), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.COMPLETED, ended
    assert run_id in ended.message and other not in ended.message
    assert [(o.name, o.value) for o in ended.observations] == [("accuracy", 0.8)]
    assert len(fake_kfp.run_bodies()) == 2  # nothing created again
    assert not any(isinstance(e, TrialStarted) for e in sink.seen)  # it was Running already


def test_a_run_that_ended_while_no_one_watched_is_reported(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    fake_kfp.behave = lambda p: Script(end="fail", message="train: exit status 3",
                                       reads_until_end=0)
    manifest = by_version(fake_kfp, lr="0.01")
    run_id = left_behind(fake_kfp, manifest)
    for _ in range(2):  # read by someone else until it ended
        fake_kfp.handle("GET", f"/apis/v2beta1/runs/{run_id}", {}, {}, b"")
    sink = Sink()
    assert launcher.adopt(launch_of(manifest), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.FAILED and "exit status 3" in ended.message, ended


def test_nothing_to_adopt_without_a_run_named_after_the_trial(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    manifest = by_version(fake_kfp, lr="0.01")
    left_behind(fake_kfp, manifest, trial="exp-other")
    assert not launcher.adopt(launch_of(manifest), Sink())
    assert not launcher.active()


def test_launching_again_follows_a_live_run_instead_of_creating_a_second(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    """A controller died after creating the run, before recording the trial Running."""
    fake_kfp.behave = lambda p: Script(metrics={"accuracy": 0.7}, reads_until_end=3)
    manifest = by_version(fake_kfp, lr="0.01")
    run_id = left_behind(fake_kfp, manifest)
    sink = Sink()
    launcher.launch(launch_of(manifest), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.COMPLETED and run_id in ended.message, ended
    assert len(fake_kfp.run_bodies()) == 1
    assert any(isinstance(e, TrialStarted) for e in sink.seen)


def test_launching_again_after_a_cancelled_run_creates_a_new_one(
    fake_kfp: FakeKfp, launcher: KfpLauncher
) -> None:
    """Ctrl-C terminated the run; resuming runs the trial again."""
    manifest = by_version(fake_kfp, lr="0.01")
    fake_kfp.behave = lambda p: Script(end="hang")
    old = left_behind(fake_kfp, manifest)
    fake_kfp.handle("POST", f"/apis/v2beta1/runs/{old}:terminate", {}, {}, b"")
    fake_kfp.behave = lambda p: Script(metrics={"accuracy": 0.6})
    sink = Sink()
    launcher.launch(launch_of(manifest), sink)
    ended = sink.until_end()
    assert ended.ending == Ending.COMPLETED and old not in ended.message, ended
    assert len(fake_kfp.run_bodies()) == 2


def test_the_hook_runs_before_the_run_is_created_and_its_failure_is_the_trials(
    fake_kfp: FakeKfp,
) -> None:
    calls: list[str] = []

    def hook(launch: TrialLaunch) -> None:
        calls.append(launch.trial)
        if launch.trial == "exp-refused":
            raise RuntimeError("the Trial resource cannot be created")

    made = KfpLauncher(fake_kfp.url, poll_interval=0.02, before_create=hook)
    try:
        manifest = by_version(fake_kfp, lr="0.01")
        ok, refused = Sink(), Sink()
        made.launch(launch_of(manifest), ok)
        made.launch(launch_of(manifest, trial="exp-refused"), refused)
        assert ok.until_end().ending == Ending.COMPLETED
        ended = refused.until_end()
        assert ended.ending == Ending.NOT_STARTED and "Trial resource" in ended.message, ended
        assert sorted(calls) == ["exp-abc", "exp-refused"]
        assert [b["display_name"] for b in fake_kfp.run_bodies()] == ["exp-abc"]
    finally:
        made.close()
