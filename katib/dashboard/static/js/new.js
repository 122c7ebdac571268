// New experiment: YAML pasted or uploaded, validated as you type (every problem with its
// field path, from the API's validate endpoint), then created.
import { ApiError, api, can, current, enc } from "./api.js";
import { clear, h, title, toast } from "./dom.js";

const SAMPLE = `apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: my-experiment
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
  parallelTrialCount: 2
  maxTrialCount: 12
  maxFailedTrialCount: 3
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: "-5", max: "5"}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: x, reference: x}
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
                command: [python3, -c, "print('loss=' + str((\${trialParameters.x} - 1) ** 2))"]
`;

export async function render(main) {
  title("New experiment");
  const me = current();
  const spaces = (await api("/namespaces")).items.map((n) => n.name).filter((n) => can("editor", n));
  if (me.role === "admin" && !spaces.includes("default")) spaces.unshift("default");
  const ns = h("select", { id: "namespace", name: "namespace" }, spaces.map((n) => h("option", { value: n }, n)));
  const yaml = h("textarea", { id: "yaml", rows: 26, spellcheck: false, "aria-describedby": "verdict" });
  yaml.value = SAMPLE;
  const file = h("input", { type: "file", id: "file", accept: ".yaml,.yml,.json,application/yaml,text/yaml" });
  const source = h("input", { id: "sourceDir", size: 50, placeholder: "folder on the server (optional)" });
  const verdict = h("div", { id: "verdict", role: "status", "aria-live": "polite" });
  const create = h("button", { type: "submit", class: "primary", disabled: true }, "Create experiment");
  const form = h("form", { onsubmit: submit },
    h("h1", {}, "New experiment"),
    h("p", { class: "muted" }, "A Katib ", h("code", {}, "kubeflow.org/v1beta1"), " Experiment, as you would ", h("code", {}, "kubectl apply"), " it. Checked as you type."),
    h("div", { class: "row" }, h("label", { for: "namespace" }, "Namespace", ns), h("label", { for: "file" }, "Upload a file", file)),
    h("label", { class: "block", for: "yaml" }, h("span", {}, "Experiment YAML"), yaml),
    verdict,
    h("label", { class: "block", for: "sourceDir" }, h("span", {}, "Source folder"), source,
      h("small", { class: "muted" }, " where relative paths of the trial's command resolve (default: the server's folder)")),
    create);
  main.append(form);
  if (!spaces.length) {
    clear(main).append(h("h1", {}, "New experiment"), h("p", {}, "Your token may not create experiments (it needs the editor role)."));
    return undefined;
  }

  let timer = null, seq = 0;
  function showErrors(errors) {
    clear(verdict).append(h("p", { class: "errors" }, `${errors.length} problem${errors.length === 1 ? "" : "s"}:`),
      h("ul", { class: "errors", id: "errors" }, errors.map((e) => h("li", { "data-path": e.path }, e.path ? h("code", {}, e.path) : "", e.path ? " " : "", e.message))));
  }
  async function validate() {
    const mine = ++seq;
    const text = yaml.value;
    if (!text.trim()) { clear(verdict); create.disabled = true; return; }
    try {
      const result = await api("/validate", { method: "POST", text, type: "application/yaml" });
      if (mine !== seq) return;
      if (result.valid) {
        clear(verdict).append(h("p", { class: "ok", id: "valid" }, "✓ Valid"));
        create.disabled = false;
      } else {
        showErrors(result.errors);
        create.disabled = true;
      }
    } catch (e) {
      if (mine !== seq) return;
      showErrors(e.errors.length ? e.errors : [{ path: "", message: e.message }]);
      create.disabled = true;
    }
  }
  const later = () => { clearTimeout(timer); create.disabled = true; timer = setTimeout(validate, 350); };
  yaml.addEventListener("input", later);
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    yaml.value = await f.text();
    later();
  });

  async function submit(ev) {
    ev.preventDefault();
    create.disabled = true;
    try {
      const q = source.value.trim() ? `?sourceDir=${enc(source.value.trim())}` : "";
      const made = await api(`/namespaces/${enc(ns.value)}/experiments${q}`, { method: "POST", text: yaml.value, type: "application/yaml" });
      toast(`created ${made.metadata.name}`);
      location.hash = `#/experiments/${enc(made.metadata.namespace)}/${enc(made.metadata.name)}`;
    } catch (e) {
      if (e instanceof ApiError && e.errors.length) showErrors(e.errors);
      else showErrors([{ path: "", message: e.message }]);
      create.disabled = false;
    }
  }
  validate();
  return () => clearTimeout(timer);
}
