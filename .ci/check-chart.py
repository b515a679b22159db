#!/usr/bin/env python3
"""Checks the Helm chart helm/atenciones without a cluster.

Renders it with Helm's own engine (helm_python) for the default values and for
helm/atenciones/ci/production-values.yaml, then: `helm lint --strict`; yamllint on
the values files and on what was rendered; kubernetes-validate --strict against
Kubernetes 1.30's schemas (the ServiceMonitor, which it has no schema for, against
one written here); properties a deployment relies on (hooks, probes, security,
no secret in plain sight); and values that values.schema.json or the templates
must refuse. Prints what was rendered and exits non-zero on any failure.

Run from .ci/run with the venv that has helm-python-sdk, kubernetes-validate and
yamllint.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import helm_python
import jsonschema
import yaml
from helm_python import Chart, HelmRenderError, HelmValuesError
from yamllint import linter
from yamllint.config import YamlLintConfig

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "atenciones"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
KUBERNETES_VERSION = "1.30.0"
RELEASE, NAMESPACE = "atenciones", "contact-center"
COMPONENTS = ["gateway", "queue", "messaging", "form", "history"]
SERVICE_PORTS = {"queue": 50061, "messaging": 50062, "form": 50063, "history": 50064}
# internalTls: what each process reads from the Secret (env var → key under internalTls).
TLS_CA_ENV = {"ATENCIONES_INTERNAL__TLS_CA_PEM": "caKey"}
TLS_SERVER_ENV = {"ATENCIONES_INTERNAL__TLS_CERT_PEM": "certKey", "ATENCIONES_INTERNAL__TLS_KEY_PEM": "privateKeyKey"}
TLS_DEFAULTS = {"certKey": "tls.crt", "privateKeyKey": "tls.key", "caKey": "ca.crt"}

# Kinds kubernetes-validate bundles no schema for: validated here instead, and
# left out of its input by name (anything else unknown to it is a failure).
NOT_IN_KUBERNETES_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

SERVICE_MONITOR_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port", "path", "interval"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    },
}

# Rendered output and values files: relaxed, but long lines are fine (annotations, URLs).
YAMLLINT = YamlLintConfig(
    "extends: relaxed\n"
    "rules:\n"
    "  line-length: disable\n"
    # toYaml writes lists flush with their key, the templates indent theirs.
    "  indentation: {spaces: consistent, indent-sequences: whatever}\n"
)

# Values the chart must refuse at install time: (what, values, text the error must show).
BAD_VALUES = [
    ("negative replicas", {"components": {"queue": {"replicas": -1}}}, "replicas"),
    ("unknown key under a component", {"components": {"gateway": {"replica": 3}}}, "replica"),
    ("ingress.enabled as a string", {"ingress": {"enabled": "yes"}}, "enabled"),
    ("unknown top-level key", {"replicaCount": 2}, "replicaCount"),
    ("unknown auth algorithm", {"auth": {"algorithm": "none"}}, "algorithm"),
    ("a secret value instead of a Secret name", {"secrets": {"internalSecret": "hunter2"}}, "internalSecret"),
    ("a secret written in config", {"config": {"whatsapp": {"app_secret": "x"}}}, "config.whatsapp.app_secret"),
    ("a database URL written in config", {"config": {"queue": {"database_url": "postgres://u:p@db/q"}}},
     "config.queue.database_url"),
    ("a listen address in config (the chart's)", {"config": {"gateway": {"listen": "0.0.0.0:1"}}},
     "config.gateway.listen"),
    ("a credential among plain store options", {"media": {"storeOptions": {"aws_secret_access_key": "x"}}},
     "storeOptionsFromSecrets"),
    ("a media store URL of an unknown scheme", {"media": {"storeUrl": "ftp://host/media"}}, "storeUrl"),
    ("a ServiceMonitor without metrics", {"metrics": {"enabled": False}, "serviceMonitor": {"enabled": True}},
     "metrics.enabled"),
    ("autoscaling with min above max",
     {"defaults": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}}, "minReplicas"),
    ("internal TLS without its Secret", {"internalTls": {"enabled": True}}, "secretName"),
    ("internal TLS with an empty Secret name", {"internalTls": {"enabled": True, "secretName": ""}}, "secretName"),
    ("an unknown key under internalTls", {"internalTls": {"enabled": True, "secretName": "x", "ca": "y"}}, "ca"),
    ("a TLS private key written in config", {"config": {"internal": {"tls_key_pem": "-----BEGIN PRIVATE KEY-----"}}},
     "config.internal.tls_key_pem"),
    ("a TLS CA written in config", {"config": {"internal": {"tls_ca_pem": "-----BEGIN CERTIFICATE-----"}}},
     "internalTls"),
]

SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|DATABASE_URL|PUBLIC_KEY|STORE_OPTIONS__|_PEM$")

failures: list[str] = []


def fail(message: str) -> None:
    failures.append(message)
    print(f"FAIL {message}")


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def render(chart: Chart, values: dict | None) -> tuple[str, list[dict]]:
    """The release's manifests as Helm would send them (NOTES.txt aside)."""
    manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    texts = [text for path, text in sorted(manifests.items())
             if not path.endswith("NOTES.txt") and text.strip()]
    text = "".join("---\n" + t.strip("\n").removeprefix("---\n") + "\n" for t in texts)
    documents = [d for d in yaml.safe_load_all(text) if d]
    return text, documents


def lint_yaml(label: str, text: str) -> None:
    for problem in linter.run(text, YAMLLINT):
        fail(f"yamllint {label}:{problem.line}:{problem.column}: {problem.desc} ({problem.rule})")


def kubernetes_validate(label: str, documents: list[dict]) -> None:
    checked = [d for d in documents if (d["apiVersion"], d["kind"]) not in NOT_IN_KUBERNETES_SCHEMAS]
    tool = Path(sys.executable).parent / "kubernetes-validate"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"{label}-") as file:
        yaml.safe_dump_all(checked, file, sort_keys=False)
        file.flush()
        run = subprocess.run([str(tool), "--strict", "-k", KUBERNETES_VERSION, file.name],
                             capture_output=True, text=True, check=False)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    passed = [line for line in lines if line.startswith("INFO ") and " passed for resource " in line]
    for line in lines:
        if line not in passed:
            fail(f"kubernetes-validate {label}: {line}")
    check(run.returncode == 0, f"kubernetes-validate {label}: exit code {run.returncode}")
    check(len(passed) == len(checked),
          f"kubernetes-validate {label}: {len(passed)} objects passed of {len(checked)}")


def validate_service_monitors(label: str, documents: list[dict]) -> None:
    validator = jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA)
    for doc in documents:
        if doc["kind"] == "ServiceMonitor":
            for error in validator.iter_errors(doc):
                path = ".".join(str(p) for p in error.absolute_path)
                fail(f"ServiceMonitor {label} {doc['metadata']['name']}: {path}: {error.message}")


def by_kind(documents: list[dict], kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


def internal_tls(values: dict | None) -> dict | None:
    """The internalTls values with their defaults, or None when it is off."""
    tls = (values or {}).get("internalTls") or {}
    return {**TLS_DEFAULTS, **tls} if tls.get("enabled") else None


def check_properties(label: str, documents: list[dict], production: bool, tls: dict | None) -> None:
    """What ops rely on, beyond the objects being well-formed."""
    if production:
        check(tls is not None and tls.get("secretName") == "atenciones-internal-tls",
              f"{label}: internalTls is enabled with the Secret atenciones-internal-tls")
    else:
        check(tls is None, f"{label}: internalTls is off by default")
    deployments = by_kind(documents, "Deployment")
    services = by_kind(documents, "Service")
    check(sorted(d["metadata"]["name"] for d in deployments)
          == sorted(f"{RELEASE}-{c}" for c in COMPONENTS),
          f"{label}: one Deployment per component")
    check(len(services) == len(COMPONENTS), f"{label}: one Service per component")

    jobs = [j for j in by_kind(documents, "Job") if j["metadata"]["name"].endswith("-migrate")]
    check(len(jobs) == 1, f"{label}: one migration Job")
    hooks = {}
    for doc in documents:
        annotations = doc["metadata"].get("annotations") or {}
        if "helm.sh/hook" in annotations:
            hooks[(doc["kind"], doc["metadata"]["name"])] = annotations
    for job in jobs:
        annotations = job["metadata"].get("annotations") or {}
        check(annotations.get("helm.sh/hook") == "pre-install,pre-upgrade",
              f"{label}: the migration Job is a pre-install,pre-upgrade hook")
        pod = job["spec"]["template"]["spec"]
        check(pod["containers"][0]["args"] == ["migrate"], f"{label}: the Job runs `atenciones migrate`")
        job_env = {e["name"] for e in pod["containers"][0].get("env", [])}
        check(not job_env & {*TLS_CA_ENV, *TLS_SERVER_ENV}, f"{label}: the migration Job gets no TLS material")
        weight = int(annotations.get("helm.sh/hook-weight", "0"))
        # What a pre-install Job uses must exist before it: a hook of lower weight.
        used = [("ServiceAccount", pod.get("serviceAccountName", "default"))]
        used += [("ConfigMap", v["configMap"]["name"]) for v in pod.get("volumes", []) if "configMap" in v]
        for kind, name in used:
            if kind == "ServiceAccount" and name == "default":
                continue
            hook = hooks.get((kind, name))
            check(hook is not None and "pre-install" in hook["helm.sh/hook"]
                  and int(hook.get("helm.sh/hook-weight", "0")) < weight,
                  f"{label}: the Job's {kind} {name} is a pre-install hook created before it")
        check_pod(label, job["metadata"]["name"], pod)

    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(documents, "HorizontalPodAutoscaler")}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        component = name.removeprefix(f"{RELEASE}-")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        check(container["args"] == ["run", "--role", component], f"{name}: runs its own role")
        grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
        # Kubernetes' gRPC probe speaks no TLS: with internalTls the services' ports get TCP probes.
        handler = "tcpSocket" if tls and component != "gateway" else "grpc"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check(container.get(probe, {}).get(handler, {}).get("port") == grpc_port
                  and not {"grpc", "tcpSocket", "httpGet", "exec"} - {handler} & set(container[probe]),
                  f"{name}: {probe} is a {handler} probe on port {grpc_port}")
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
        check(pre_stop is not None and pre_stop > 0, f"{name}: preStop sleeps")
        check(pod.get("terminationGracePeriodSeconds", 30) > (pre_stop or 0) + 1,
              f"{name}: the grace period covers the preStop sleep and the drain")
        env = {e["name"]: e for e in container.get("env", [])}
        check(env.get("ATENCIONES_CONFIG", {}).get("value") == "/etc/atenciones/config.toml",
              f"{name}: ATENCIONES_CONFIG points at the mounted settings file")
        check(env.get("ATENCIONES_DATABASE__MIGRATE", {}).get("value") == "false",
              f"{name}: does not migrate (the Job does)")
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        check(mounts.get("/etc/atenciones", {}).get("readOnly") is True, f"{name}: settings mounted read-only")
        check("/data" in mounts, f"{name}: /data is mounted (the root filesystem is read-only)")
        check("ATENCIONES_INTERNAL__SECRET" in env, f"{name}: has internal.secret from a Secret")
        # Every process verifies the services with the CA; the four services serve the certificate.
        wanted = ({**TLS_CA_ENV, **(TLS_SERVER_ENV if component != "gateway" else {})} if tls else {})
        for var in (*TLS_CA_ENV, *TLS_SERVER_ENV):
            if var not in wanted:
                check(var not in env, f"{name}: no {var} ({'the gateway serves plain' if tls else 'internalTls is off'})")
                continue
            ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
            check("value" not in env.get(var, {}) and ref.get("name") == tls["secretName"]
                  and ref.get("key") == tls[wanted[var]],
                  f"{name}: {var} comes from secretKeyRef {tls['secretName']}/{tls[wanted[var]]}")
        if component != "gateway":
            check(f"ATENCIONES_{component.upper()}__DATABASE_URL" in env, f"{name}: has its database URL")
        if name in scaled:
            check("replicas" not in deployment["spec"], f"{name}: replicas left to its HPA")
        else:
            check(deployment["spec"].get("replicas", 0) >= 1, f"{name}: replicas set")
        check_pod(label, name, pod)

    if production:
        for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "ServiceMonitor",
                     "NetworkPolicy"):
            check(by_kind(documents, kind), f"{label}: renders a {kind}")
        webhook = [i for i in by_kind(documents, "Ingress") if i["metadata"]["name"].endswith("-webhook")]
        paths = [p for i in webhook for r in i["spec"]["rules"] for p in r["http"]["paths"]]
        check([p["path"] for p in paths] == ["/webhooks/whatsapp"]
              and paths[0]["backend"]["service"]["port"]["name"] == "webhook",
              f"{label}: the webhook Ingress exposes /webhooks/whatsapp on messaging's webhook port only")
    policies = {p["metadata"]["name"].removeprefix(f"{RELEASE}-"): p for p in by_kind(documents, "NetworkPolicy")}
    for component in COMPONENTS[1:]:
        rules = policies.get(component, {}).get("spec", {}).get("ingress", [])
        grpc = [r for r in rules if any(p["port"] == "grpc" for p in r["ports"])]
        check(len(grpc) == 1 and grpc[0].get("from")
              and all(f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/instance") == RELEASE
                      and "namespaceSelector" not in f for f in grpc[0]["from"]),
              f"{label}: {component}'s gRPC port accepts this release's pods only")

    configs = [c for c in by_kind(documents, "ConfigMap") if "config.toml" in c.get("data", {})]
    check(len(configs) == 2, f"{label}: the settings file, for the services and for the migration Job")
    for config in configs:
        toml = config["data"]["config.toml"]
        scheme = "https" if tls else "http"
        urls = [f'url = "{scheme}://{RELEASE}-{s}:{port}"' for s, port in SERVICE_PORTS.items()]
        for line in ("demo = false", 'data_dir = "/data"', "migrate = false", 'log_format = "json"',
                     *urls, 'webhook_listen = "0.0.0.0:8080"'):
            check(line in toml, f"{label}: {config['metadata']['name']} sets {line}")
        other = "http" if tls else "https"
        check(not re.search(rf'^url = "{other}://', toml, re.M),
              f"{label}: {config['metadata']['name']} has no {other}:// service URL")
        check(not re.search(r"(?m)^tls_\w*_pem\s*=", toml),
              f"{label}: {config['metadata']['name']} holds no TLS PEM (they come from the Secret)")
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11: the check above is enough.
            continue
        try:
            tomllib.loads(toml)
        except tomllib.TOMLDecodeError as error:
            fail(f"{label}: {config['metadata']['name']} is not valid TOML: {error}")


def check_pod(label: str, name: str, pod: dict) -> None:
    check(pod.get("automountServiceAccountToken") is False, f"{name}: no service account token")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
    check(pod.get("enableServiceLinks") is False, f"{name}: no service-link variables (they share the ATENCIONES_ prefix)")
    for container in pod["containers"]:
        sc = container.get("securityContext", {})
        check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532,
              f"{name}: container runs as 65532, non-root")
        check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation false")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drops ALL capabilities")
        check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
        for env in container.get("env", []):
            if SECRET_ENV.search(env["name"]):
                check("value" not in env and "secretKeyRef" in env.get("valueFrom", {}),
                      f"{label}: {name} env {env['name']} comes from a Secret, not a literal value")


def check_bad_values(chart: Chart) -> None:
    for what, values, expected in BAD_VALUES:
        try:
            render(chart, values)
        except (HelmValuesError, HelmRenderError) as error:
            message = " ".join(str(error).split())
            check(expected in message, f"bad values ({what}): the message does not name {expected!r}: {message}")
            print(f"  refused: {what}: {message[:160]}")
        else:
            fail(f"bad values ({what}) were accepted: {values}")


def main() -> int:
    lint = helm_python.lint(CHART, strict=True)
    for message in lint["messages"]:
        if message["severity"] >= 2:
            fail(f"helm lint --strict: {message['path']}: {message['error']}")
    for error in lint["errors"]:
        fail(f"helm lint --strict: {error}")

    for values_file in (CHART / "values.yaml", PRODUCTION_VALUES):
        lint_yaml(str(values_file.relative_to(REPO)), values_file.read_text())

    production_values = yaml.safe_load(PRODUCTION_VALUES.read_text())
    production_lint = helm_python.lint(CHART, production_values, strict=True)
    for message in production_lint["messages"]:
        if message["severity"] >= 2:
            fail(f"helm lint --strict (production values): {message['path']}: {message['error']}")

    with Chart.load(CHART) as chart:
        for label, values, production in (("default", None, False),
                                          ("production", production_values, True)):
            try:
                text, documents = render(chart, values)
            except helm_python.HelmError as error:
                fail(f"{label}: rendering failed: {error}")
                continue
            lint_yaml(f"rendered {label}", text)
            kubernetes_validate(label, documents)
            validate_service_monitors(label, documents)
            check_properties(label, documents, production, internal_tls(values))
            kinds = Counter(d["kind"] for d in documents)
            print(f"{label} values: {len(documents)} objects: "
                  + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
        check_bad_values(chart)

    if failures:
        print(f"chart check: {len(failures)} failed", file=sys.stderr)
        return 1
    print(f"chart check: passed (helm lint, yamllint, kubernetes-validate {KUBERNETES_VERSION}, "
          f"ServiceMonitor schema, {len(BAD_VALUES)} bad values refused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
