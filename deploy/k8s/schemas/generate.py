"""Regenerate the JSON Schemas `make lint` validates deploy/k8s with (kubeconform, offline).

    python3 deploy/k8s/schemas/generate.py        # needs pip, go, mvn and a Java 21+ runtime

Every schema comes from a package registry, at the versions below, never from a web page:

- core kinds: the strict "local" schemas of Kubernetes 1.37.0 in the PyPI wheel
  `kubernetes-validate` (made from k8s.io/kubernetes' OpenAPI document); each kind is written
  standalone, with the definitions it uses inlined under `$defs`;
- Strimzi `Kafka`, `KafkaNodePool`, `KafkaTopic`, `KafkaUser` (kafka.strimzi.io/v1): the CRDs
  that Strimzi's own `io.strimzi:crd-generator` (Maven Central) makes from the model classes of
  `io.strimzi:api`, both at STRIMZI;
- KEDA `ScaledObject`, `TriggerAuthentication` (keda.sh/v1alpha1): the CRDs in the Go module
  `github.com/kedacore/keda/v2` (config/crd/bases);
- MongoDB Community Operator `MongoDBCommunity` (mongodbcommunity.mongodb.com/v1): the CRD in
  the Go module `github.com/mongodb/mongodb-kubernetes-operator` (config/crd/bases).

A CRD's `openAPIV3Schema` becomes a strict schema (objects with `properties` and no
`x-kubernetes-preserve-unknown-fields` take no other keys), as kubeconform's
openapi2jsonschema does. Files are named `<kind>-<group prefix>-<version>.json` (core group:
`<kind>-<version>.json`), which kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}` finds.
A kind missing here fails `make lint`: add it to CORE_KINDS or the CRD lists and rerun.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KUBERNETES = "1.37.0"
KUBERNETES_VALIDATE = "1.37.0"  # the PyPI package; its wheel carries the v1.37.0 schemas
STRIMZI = "1.2.0"
KEDA = "v2.21.0"
MONGODB_OPERATOR = "v0.9.0"

# (kind, group/version) of the core kinds the manifests use.
CORE_KINDS = [
    ("ConfigMap", "v1"),
    ("Secret", "v1"),
    ("Service", "v1"),
    ("ServiceAccount", "v1"),
    ("Deployment", "apps/v1"),
    ("HorizontalPodAutoscaler", "autoscaling/v2"),
    ("PodDisruptionBudget", "policy/v1"),
    ("NetworkPolicy", "networking.k8s.io/v1"),
    ("Role", "rbac.authorization.k8s.io/v1"),
    ("RoleBinding", "rbac.authorization.k8s.io/v1"),
]
STRIMZI_CLASSES = {
    "Kafka": "io.strimzi.api.kafka.model.kafka.Kafka",
    "KafkaNodePool": "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "KafkaTopic": "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "KafkaUser": "io.strimzi.api.kafka.model.user.KafkaUser",
}
KEDA_CRDS = ["keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml"]
MONGODB_CRDS = ["mongodbcommunity.mongodb.com_mongodbcommunity.yaml"]


def run(cmd: list[str], **kwargs: Any) -> str:
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs).stdout


def kind_suffix(api_version: str) -> str:
    """kubeconform's KindSuffix: `-<first label of the group>-<version>`, `-<version>` for core."""
    group, _, version = api_version.rpartition("/")
    return f"-{group.split('.')[0]}-{version}" if group else f"-{version}"


def write(kind: str, api_version: str, schema: dict[str, Any], out: Path) -> None:
    path = out / f"{kind.lower()}{kind_suffix(api_version)}.json"
    path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"  {path.relative_to(HERE)}", file=sys.stderr)


# --------------------------------------------------------------------------- core kinds


def core_schemas(work: Path, out: Path) -> None:
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "-d",
            str(work),
            f"kubernetes-validate=={KUBERNETES_VALIDATE}",
        ]
    )
    [wheel] = work.glob("kubernetes_validate-*.whl")
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{KUBERNETES}-local-strict/"
    with zipfile.ZipFile(wheel) as archive:
        defs: dict[str, Any] = json.loads(archive.read(prefix + "_definitions.json"))["$defs"]
        for kind, api_version in CORE_KINDS:
            name = f"{kind.lower()}{kind_suffix(api_version)}.json"
            schema = json.loads(archive.read(prefix + name))
            write(kind, api_version, standalone(schema, defs), out)


def standalone(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The schema with every definition it reaches inlined under `$defs`."""
    wanted: dict[str, Any] = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        for ref in refs(node):
            name = ref.rsplit("/", 1)[-1]
            if name not in wanted:
                wanted[name] = defs[name]
                pending.append(defs[name])
    result = rewrite(schema)
    result["$defs"] = {name: rewrite(body) for name, body in sorted(wanted.items())}
    return dict(result)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found += refs(value)
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: ("#/$defs/" + value.rsplit("/", 1)[-1])
            if key == "$ref" and isinstance(value, str)
            else rewrite(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [rewrite(item) for item in node]
    return node


# --------------------------------------------------------------------------- CRDs


def strict(node: Any) -> Any:
    """openapi2jsonschema's strict mode: objects with properties take no other keys."""
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def crd_schemas(crd_files: list[Path], out: Path) -> None:
    for crd_file in crd_files:
        for crd in yaml.safe_load_all(crd_file.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                schema = strict(version["schema"]["openAPIV3Schema"])
                write(kind, f"{group}/{version['name']}", schema, out)


def strimzi_crds(work: Path, java: str) -> list[Path]:
    pom = work / "pom.xml"
    pom.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>io.mandaact</groupId><artifactId>strimzi-crds</artifactId><version>1</version>"
        "<dependencies>"
        f"<dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId>"
        f"<version>{STRIMZI}</version></dependency>"
        f"<dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId>"
        f"<version>{STRIMZI}</version></dependency>"
        "</dependencies></project>\n"
    )
    lib = work / "strimzi-lib"
    run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
        ]
    )
    crds = [work / f"strimzi-{kind.lower()}.yaml" for kind in STRIMZI_CLASSES]
    run(
        [
            java,
            "-cp",
            f"{lib}/*",
            "io.strimzi.crdgenerator.CrdGenerator",
            "--yaml",
            "--crd-api-version",
            "v1",
            "--api-versions",
            "v1",
            "--storage-version",
            "v1",
            *(f"{cls}={path}" for cls, path in zip(STRIMZI_CLASSES.values(), crds, strict=True)),
        ]
    )
    return crds


def go_module_crds(module: str, version: str, names: list[str]) -> list[Path]:
    info = json.loads(run(["go", "mod", "download", "-json", f"{module}@{version}"]))
    bases = Path(info["Dir"]) / "config" / "crd" / "bases"
    return [bases / name for name in names]


def java21() -> str:
    """A java of version 21+ (Strimzi's generator is built for it): $STRIMZI_JAVA, else the
    first of $JAVA_HOME and /usr/lib/jvm/* that runs it."""
    candidates = [os.environ.get("STRIMZI_JAVA", "")]
    candidates.append(str(Path(os.environ.get("JAVA_HOME", "/nonexistent")) / "bin" / "java"))
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java"))
    for java in filter(None, candidates):
        if not Path(java).is_file():
            continue
        spec = subprocess.run(
            [java, "-XshowSettings:properties", "-version"], capture_output=True, text=True
        ).stderr
        for line in spec.splitlines():
            if "java.specification.version" in line and int(line.split("=")[1]) >= 21:
                return java
    raise SystemExit("no Java 21+ found for Strimzi's crd-generator: set STRIMZI_JAVA")


def main() -> int:
    out = HERE
    for old in out.glob("*.json"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="k8s-schemas-") as tmp:
        work = Path(tmp)
        core_schemas(work, out)
        crd_schemas(strimzi_crds(work, java21()), out)
        crd_schemas(go_module_crds("github.com/kedacore/keda/v2", KEDA, KEDA_CRDS), out)
        crd_schemas(
            go_module_crds(
                "github.com/mongodb/mongodb-kubernetes-operator", MONGODB_OPERATOR, MONGODB_CRDS
            ),
            out,
        )
    (out / "VERSIONS").write_text(
        f"kubernetes {KUBERNETES} (PyPI kubernetes-validate {KUBERNETES_VALIDATE})\n"
        f"strimzi {STRIMZI} (Maven io.strimzi:api + io.strimzi:crd-generator)\n"
        f"keda {KEDA} (Go module github.com/kedacore/keda/v2)\n"
        f"mongodb-community-operator {MONGODB_OPERATOR}"
        " (Go module github.com/mongodb/mongodb-kubernetes-operator)\n"
    )
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
