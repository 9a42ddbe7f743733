"""Checks rendered Kubernetes manifests offline; run by scripts/validate-manifests.sh.

    python check_manifests.py --settings docs/configuration.md --kubernetes 1.33.0 \
        [--profile prod] NAME=rendered.yaml ...

For every document of every file:
- the Kubernetes JSON schema of its kind (kubernetes-validate's bundled schemas, strict: a field
  the schema does not know is an error);
- every BOXOFFICE_* variable it sets is a setting documented in docs/configuration.md (the env
  column of its tables);
- every Deployment's containers have startup-independent liveness and readiness probes, resource
  requests and limits; every pod (Deployments and Jobs) runs as non-root with a read-only root
  filesystem, no privilege escalation and every capability dropped; no service account token is
  mounted.
With --profile prod also: every Deployment has an HPA with at least 2 replicas and a PDB, the
image is pinned (no `latest`), no placeholder (CHANGE-ME) Secret is left, and sandbox mode is off.

Prints one line per problem and a summary; exits 1 when any document has a problem.
`--expect-reject` inverts it for the self-test: every *file* must be rejected, and for the reason
its `# expect: <text>` line names (a problem containing that text).
"""

import argparse
import re
import sys

import kubernetes_validate
import yaml

ENV_PREFIX = "BOXOFFICE_"


def documented_settings(path):
    """The env names of docs/configuration.md's tables: exact names, and patterns for names
    with a placeholder (`BOXOFFICE_SERVICES__<NAME>`). A cell's `..._X` abbreviates the cell's
    previous full name with its last word(s) replaced by X (`BOXOFFICE_USER__ADMIN_EMAIL`,
    `..._PASSWORD`); every such reading is accepted. `BOXOFFICE_X__...` (a whole section, see
    another page) is not: a variable must be named in full."""
    exact, patterns = set(), []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = None
    for line in lines:
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if "env" not in header or set(line) <= set("|-: "):
            continue
        cell = cells[header.index("env")] if header.index("env") < len(cells) else ""
        last_full = None
        for token in re.findall(r"`([^`]+)`", cell):
            if token.startswith(ENV_PREFIX):
                if token.endswith("..."):
                    continue
                last_full = token
                names = [token]
            elif token.startswith("..._") and last_full:
                suffix = token[3:]
                names = [last_full[:i] + suffix for i, c in enumerate(last_full) if c == "_"]
            else:
                continue
            for name in names:
                if "<" in name:
                    parts = re.split(r"<[^>]+>", name)
                    patterns.append(re.compile("[A-Z0-9_-]+".join(map(re.escape, parts))))
                else:
                    exact.add(name)
    if len(exact) < 20:
        sys.exit(f"error: only {len(exact)} settings found in {path}: has its table layout changed?")
    return exact, patterns


def pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return (spec.get("template") or {}).get("spec")
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    if kind == "Pod":
        return spec
    return None


def env_names(doc):
    """(name, where) of every variable a document sets: pod env entries and ConfigMap keys."""
    if doc.get("kind") == "ConfigMap":
        for key in (doc.get("data") or {}):
            yield key, "data"
    spec = pod_spec(doc)
    if spec:
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for e in c.get("env") or []:
                yield e.get("name", ""), f"container {c.get('name')}"


def check_pod(doc, problems):
    spec = pod_spec(doc)
    if spec is None:
        return
    kind = doc["kind"]
    pod_sc = spec.get("securityContext") or {}
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("pod mounts a service account token (automountServiceAccountToken)")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        name = c.get("name")
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is not True or user in (None, 0):
            problems.append(f"container {name}: not runAsNonRoot with a non-zero runAsUser")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"container {name}: root filesystem not read-only")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name}: allowPrivilegeEscalation not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"container {name}: capabilities do not drop ALL")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            if not all(k in (res.get(part) or {}) for k in ("cpu", "memory")):
                problems.append(f"container {name}: no cpu and memory {part}")
        if kind == "Deployment":
            for probe in ("livenessProbe", "readinessProbe"):
                if not c.get(probe):
                    problems.append(f"container {name}: no {probe}")
            ready = (c.get("readinessProbe") or {}).get("httpGet", {}).get("path")
            alive = (c.get("livenessProbe") or {}).get("httpGet", {}).get("path")
            if ready and ready != "/readyz" or alive and alive != "/healthz":
                problems.append(f"container {name}: probes not on /readyz and /healthz")


def check_prod(docs, problems_of):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), {})[(d.get("metadata") or {}).get("name")] = d
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    pdb_selectors = [p["spec"].get("selector", {}).get("matchLabels", {})
                     for p in by_kind.get("PodDisruptionBudget", {}).values()]
    for name, d in by_kind.get("Deployment", {}).items():
        problems = problems_of(d)
        hpa = hpas.get(name)
        if not hpa or hpa["spec"].get("minReplicas", 1) < 2:
            problems.append("prod: no HorizontalPodAutoscaler with minReplicas >= 2")
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        if not any(sel and all(labels.get(k) == v for k, v in sel.items()) for sel in pdb_selectors):
            problems.append("prod: no PodDisruptionBudget selects its pods")
    for d in docs:
        spec = pod_spec(d)
        for c in (spec or {}).get("containers", []):
            image = c.get("image", "")
            if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
                problems_of(d).append(f"prod: image {image!r} is not pinned to a tag or digest")
        if d.get("kind") == "Secret":
            values = list((d.get("stringData") or {}).values()) + list((d.get("data") or {}).values())
            if any("CHANGE-ME" in str(v) for v in values):
                problems_of(d).append("prod: a placeholder (CHANGE-ME) Secret is left")
        if d.get("kind") == "ConfigMap" and (d.get("data") or {}).get("BOXOFFICE_SANDBOX", "false") != "false":
            problems_of(d).append("prod: sandbox mode is on")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", required=True)
    ap.add_argument("--kubernetes", required=True)
    ap.add_argument("--profile", choices=["base", "dev", "prod"], default="base")
    ap.add_argument("--expect-reject", action="store_true")
    ap.add_argument("files", nargs="+", metavar="NAME=FILE")
    args = ap.parse_args()

    exact, patterns = documented_settings(args.settings)
    failed_files, total, bad_docs = [], 0, 0
    expected, found = {}, {}
    for item in args.files:
        label, path = item.split("=", 1)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        expect = re.search(r"^# expect: (.+)$", text, re.M)
        expected[label] = expect.group(1).strip() if expect else None
        docs = [d for d in yaml.safe_load_all(text) if d]
        problems = {id(d): [] for d in docs}
        for d in docs:
            p = problems[id(d)]
            try:
                kubernetes_validate.validate(d, args.kubernetes, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(x) for x in e.path) or "(document)"
                p.append(f"schema: {where}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                p.append(f"schema: {e.message}")
            except (KeyError, TypeError) as e:
                p.append(f"schema: not a Kubernetes object ({e})")
            for name, where in env_names(d):
                if name.startswith(ENV_PREFIX) and name not in exact and not any(
                    r.fullmatch(name) for r in patterns
                ):
                    p.append(f"{where}: {name} is not a setting in {args.settings}")
            check_pod(d, p)
        if args.profile == "prod":
            check_prod(docs, lambda d: problems[id(d)])
        file_bad = 0
        found[label] = [m for d in docs for m in problems[id(d)]]
        for d in docs:
            meta = d.get("metadata") or {}
            for msg in problems[id(d)]:
                print(f"  {label}: {d.get('kind')}/{meta.get('name')}: {msg}")
            file_bad += bool(problems[id(d)])
        total += len(docs)
        bad_docs += file_bad
        print(f"  {label}: {len(docs)} documents, {file_bad} with problems")
        if file_bad:
            failed_files.append(label)
    if args.expect_reject:
        wrong = [
            f"{label} (expected a problem with {want!r})"
            for label, want in expected.items()
            if not want or not any(want in m for m in found[label])
        ]
        if wrong:
            print(f"self-test FAILED: not rejected for the expected reason: {'; '.join(wrong)}")
            return 1
        print(f"self-test: all {len(expected)} broken fixtures rejected, each for its expected reason")
        return 0
    print(f"{total} documents checked, {bad_docs} with problems")
    return 1 if bad_docs else 0


if __name__ == "__main__":
    sys.exit(main())
