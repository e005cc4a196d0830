"""The text path of ca_inject: split a rendered manifest exactly, read only what the transform changes, write it back.

The input has the shapes of a real `helm template` of Renku: a large CRD (never read), a Deployment, a Job hook, a
Secret whose value is regenerated on every render, a ConfigMap whose script holds `---` and `kind:` lines, a
comment-only document, a flow-style (JSON) Pod, a quoted `kind` key, an emoji.
"""

from __future__ import annotations

import datetime as dt
import random
from types import SimpleNamespace

import pytest
import yaml
from certificates import make_cert

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml, manifest_stream
from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject
from ansible_collections.airgap.renku.plugins.modules import ca_inject, release_apply


def make_ca() -> str:
    return make_cert("Stream Root CA")[0]


CA_PEM = make_ca()
SYSTEM_PEM = make_ca()


def big_crd() -> str:
    """A CRD of about 200 KB, with block scalars holding `---`, `...` and `kind:` lines (indented)."""
    props = "".join(
        f"""              field{i}:
                description: |
                  Field {i} of the session.
                  ---
                  ...
                  kind: Deployment
                type: string
                enum:
                - =
                - "2024-01-01T00:00:00Z"
"""
        for i in range(1200)
    )
    return f"""# Source: renku/charts/amalthea-sessions/templates/amaltheasession-crd.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: amaltheasessions.amalthea.dev
  annotations:
    controller-gen.kubebuilder.io/version: v0.16.1
    released: 2024-01-01T00:00:00Z
spec:
  group: amalthea.dev
  names:
    kind: AmaltheaSession
  versions:
  - name: v1alpha1
    schema:
      openAPIV3Schema:
        properties:
          spec:
            properties:
{props}"""


DEPLOYMENT = """# Source: renku/templates/ui/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: renku-ui
  annotations:
    renku.io/greeting: "hello 🐸"   # an emoji stays UTF-8
spec:
  replicas: 1
  template:
    metadata:
      labels: {app: ui}
    spec:
      initContainers:
      containers:
      - name: ui
        image: renku/renku-ui:4.0.0
        args: ["--port", "8080"]
        env:
        - name: SCRIPT
          value: |
            echo start
            ---
            kind: Secret
        ports:
        - containerPort: 8080
"""

HOOK = """# Source: renku/templates/setup-job.yaml
apiVersion: batch/v1
kind: 'Job'
metadata:
  name: renku-init-db
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: init
        image: renku/init:1.0
"""

SECRET = """# Source: renku/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: renku-generated
type: Opaque
data:
  password: {password}
"""

CONFIGMAP = """# Source: renku/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: renku-scripts
data:
  run.sh: |
    #!/bin/sh
    cat <<EOF
    ---
    kind: Deployment
    EOF
"""

SERVICE = """# Source: renku/templates/ui/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: renku-ui
spec:
  ports:
  - port: 80
    targetPort: 8080
"""

JSON_POD = """{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug"},
 "spec": {"containers": [{"name": "c", "image": "python:3.12-slim"}]}}
"""

QUOTED_KIND = """"kind": StatefulSet
apiVersion: apps/v1
metadata:
  name: solr
spec:
  template:
    spec:
      containers:
      - name: solr
        image: docker.io/bitnami/solr:9
"""


def rendered(password: str = "c2VjcmV0") -> str:
    """What `helm template` prints: every document after `---`, an empty one and a comment-only one included."""
    documents = [
        big_crd(),
        "# Source: renku/templates/empty.yaml\n# nothing rendered here\n",
        DEPLOYMENT,
        HOOK,
        SECRET.format(password=password),
        CONFIGMAP,
        "",
        SERVICE,
        JSON_POD,
        QUOTED_KIND,
    ]
    return "".join("---\n" + d for d in documents)


def options() -> inject.InjectOptions:
    return inject.InjectOptions(namespace="renku", extra_namespaces=("renku-sessions",))


def text_path(text: str) -> dict:
    cas, _warnings = ca.validate_cas([("site", CA_PEM)])
    result = inject.inject_manifest(text, cas, SYSTEM_PEM, options())
    result["digest"] = inject.manifest_digest(result["bundle"], result["parts"])
    return result


def documents_path(text: str) -> dict:
    cas, _warnings = ca.validate_cas([("site", CA_PEM)])
    return inject.inject(kube_yaml.load_documents(text), cas, SYSTEM_PEM, options())


# --------------------------------------------------------------------------------------------------
# the split


def test_split_cuts_at_marker_lines_only():
    parts = manifest_stream.split(rendered())
    assert parts is not None
    # the comment-only and the empty document are dropped; `---` inside block scalars is indented, so no cut
    assert [p.kind for p in parts] == [
        "CustomResourceDefinition",
        "Deployment",
        "Job",
        "Secret",
        "ConfigMap",
        "Service",
        None,  # flow style: a line scan cannot tell
        None,  # quoted key
    ]
    assert [kube_yaml.load_one(p.text) for p in parts] == kube_yaml.load_documents(rendered())
    assert parts[1].text == DEPLOYMENT
    lines = rendered().split("\n")
    for part in parts:  # `line` is where the text starts in the stream
        assert lines[part.line - 1] == part.text.split("\n")[0]


@pytest.mark.parametrize(
    ("text", "texts"),
    [
        ("a: 1\n---\nb: 2\n", ["a: 1\n", "b: 2\n"]),  # no leading marker
        ("---\na: 1\n", ["a: 1\n"]),  # a leading marker
        ("--- # first\na: 1\n---   \nb: 2", ["a: 1\n", "b: 2"]),  # comments and blanks after the marker
        ("---\na: 1\n...\n# between\n---\nb: 2\n...\n", ["a: 1\n", "b: 2\n"]),  # end markers
        ("# only a comment\n---\n\n# another\n---\na: 1\n", ["a: 1\n"]),  # comment-only documents dropped
        ("a: |\n  ---\n  ...\n---x: 1\n", ["a: |\n  ---\n  ...\n---x: 1\n"]),  # indented, or not a marker
        ("---\r\na: 1\r\n---\r\nb: 2\r\n", ["a: 1\r\n", "b: 2\r\n"]),  # CRLF
        ("\ufeff---\na: 1\n", ["a: 1\n"]),  # byte order mark
    ],
)
def test_split_edge_cases(text, texts):
    parts = manifest_stream.split(text)
    assert parts is not None
    assert [p.text for p in parts] == texts
    assert [kube_yaml.load_one(p.text) for p in parts] == kube_yaml.load_documents(text)


def test_a_marker_line_with_content_keeps_its_line():
    parts = manifest_stream.split("a: 1\n--- !!map\nkind: Deployment\n--- {kind: Pod}\n")
    assert parts is not None
    assert [(p.text, p.own_marker, p.kind) for p in parts[1:]] == [
        ("--- !!map\nkind: Deployment\n", True, None),
        ("--- {kind: Pod}\n", True, None),
    ]
    assert manifest_stream.emit(parts) == "---\na: 1\n--- !!map\nkind: Deployment\n--- {kind: Pod}\n"


@pytest.mark.parametrize(
    "text",
    [
        "%YAML 1.1\n---\na: 1\n",  # directives
        "a: 1\n...\nb: 2\n",  # content after an end marker without `---`: the reader refuses it
        "a: 1\r---\rb: 2\r",  # CR line breaks
        "a: 1\x85---\x85b: 2\n",  # NEL
        "a: 1\n... b\n",
    ],
)
def test_streams_a_line_cut_cannot_follow_are_read_whole(text):
    assert manifest_stream.split(text) is None
    try:
        expected = kube_yaml.load_documents(text)
    except kube_yaml.KubeYAMLError:
        with pytest.raises(kube_yaml.KubeYAMLError):
            manifest_stream.read(text, {"Deployment"})
        return
    parts = manifest_stream.read(text, {"Deployment"})
    assert [p.document for p in parts] == expected
    assert all(p.parsed and p.dirty for p in parts)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("apiVersion: v1\nkind: Service\n", "Service"),
        ("kind: Service # a comment\n", "Service"),
        ('kind: "Service"\n', "Service"),
        ("kind: 'Service'\r\n", "Service"),
        ("kind:   Service   \n", "Service"),
        ("kind: Service#x\n", None),  # the value is `Service#x`
        ("kind: !!str Service\n", None),
        ("kind: *k\n", None),
        ("kind:\n  Service\n", None),
        ("kind : Service\n", None),
        ("kind: Service\nkind: Deployment\n", None),
        ('"kind": Service\n', None),
        ("{kind: Service}\n", None),
        ("<<: *base\nkind: Service\n", None),
        ("? kind\n: Service\n", None),
        ("metadata:\n  kind: Service\n", None),
        ("kindly: Service\n", None),
        ("kind: Service, Pod\n", None),
    ],
)
def test_scan_kind(text, kind):
    assert manifest_stream.scan_kind(text) == kind


# --------------------------------------------------------------------------------------------------
# the transform over text


def test_untouched_documents_come_out_byte_identical():
    text = rendered()
    result = text_path(text)
    parts = result["parts"]
    assert [p.parsed for p in parts] == [False, True, True, True, True, False, True, True]
    assert [p.dirty for p in parts] == [False, True, True, False, False, False, True, True]
    for unchanged in (big_crd(), SECRET.format(password="c2VjcmV0"), CONFIGMAP, SERVICE):
        assert "---\n" + unchanged in result["manifest"]
    # a patched document keeps its leading comments
    assert "---\n# Source: renku/templates/ui/deployment.yaml\napiVersion: apps/v1\n" in result["manifest"]


def test_text_path_and_documents_path_give_the_same_result():
    text = rendered()
    by_text, by_documents = text_path(text), documents_path(text)
    assert kube_yaml.load_documents(by_text["manifest"]) == by_documents["documents"]
    assert by_text["documents"] == []
    for key in ("bundle", "report", "namespaces", "modified"):
        assert by_text[key] == by_documents[key], key
    assert [r["workload"] for r in by_text["report"]] == [
        "Deployment/renku-ui",
        "Job/renku-init-db",
        "Pod/debug",
        "StatefulSet/solr",
    ]
    assert by_text["report"][1]["hook"] == "pre-install,pre-upgrade"


def test_the_output_changes_nothing_when_fed_back():
    first = text_path(rendered())
    assert first["modified"]
    again = text_path(first["manifest"])
    assert again["manifest"] == first["manifest"]
    assert not again["modified"]
    assert not any(p.dirty for p in again["parts"])
    assert again["digest"] == first["digest"]
    # the post-renderer's output has the bundle objects in front: they are dropped and emitted again
    bundle = "".join("---\n" + manifest_stream.dump(d) for d in first["bundle"])
    with_bundle = text_path(bundle + first["manifest"])
    assert with_bundle["manifest"] == first["manifest"]
    assert with_bundle["bundle"] == first["bundle"]
    assert not with_bundle["modified"]


def test_an_emoji_stays_utf8_in_patched_and_untouched_documents():
    text = rendered() + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: 🐸\n"
    manifest = text_path(text)["manifest"]
    assert manifest.count("🐸") == 2
    assert "\\U0001F438" not in manifest and "\\U0001f438" not in manifest
    assert kube_yaml.load_documents(manifest)[1]["metadata"]["annotations"]["renku.io/greeting"] == "hello 🐸"


def test_digest_is_stable_and_ignores_regenerated_secret_values():
    first, second = text_path(rendered("YWFh")), text_path(rendered("YmJi"))
    assert first["manifest"] != second["manifest"]
    assert first["digest"] == second["digest"] == text_path(rendered("YWFh"))["digest"]
    changed = text_path(rendered().replace("renku/init:1.0", "renku/init:1.1"))
    assert changed["digest"] != first["digest"]


def test_a_yaml_error_names_the_line_of_the_whole_manifest():
    text = rendered().replace("        image: renku/init:1.0\n", "        image: [renku/init:1.0\n")
    line = text.split("\n").index("        image: [renku/init:1.0") + 1
    with pytest.raises(kube_yaml.KubeYAMLError, match=r"^manifest: line (\d+)") as info:
        text_path(text)
    assert line <= (info.value.line or 0) <= line + 2


def test_pod_spec_paths_kinds_are_read():
    session = "apiVersion: amalthea.dev/v1alpha1\nkind: AmaltheaSession\nmetadata:\n  name: s\n"
    session += "spec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: jupyter:1\n"
    cas, _warnings = ca.validate_cas([("site", CA_PEM)])
    plain = inject.inject_manifest(session, cas, "", inject.InjectOptions())
    assert plain["manifest"] == "---\n" + session and plain["report"] == []
    opts = inject.InjectOptions(extra_paths={"AmaltheaSession": [("spec", "template", "spec")]})
    assert "AmaltheaSession" in inject.manifest_kinds(opts)
    patched = inject.inject_manifest(session, cas, "", opts)
    assert [r["workload"] for r in patched["report"]] == ["AmaltheaSession/s"]


# --------------------------------------------------------------------------------------------------
# the modules


def test_ca_inject_output_manifest_needs_text_input():
    failures: list[str] = []

    def fail_json(msg: str) -> None:
        failures.append(msg)
        raise SystemExit

    module = SimpleNamespace(params={"documents": [], "src": None, "manifest": None}, fail_json=fail_json)
    with pytest.raises(SystemExit):
        ca_inject._manifest_text(module)
    assert "give 'manifest' or 'src'" in failures[0]


def test_ca_inject_reads_src_as_text(tmp_path):
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered(), encoding="utf-8")
    module = SimpleNamespace(params={"documents": None, "src": str(path), "manifest": None}, fail_json=pytest.fail)
    assert ca_inject._manifest_text(module) == (rendered(), str(path))


def test_release_apply_takes_documents_then_the_manifest():
    bundle = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "airgap-ca-bundle"}}]
    manifest = "---\n# comment only\n---\n" + SERVICE + "---\n~\n---\n" + DEPLOYMENT
    documents = release_apply.documents_to_apply(bundle, manifest)
    assert [d["kind"] for d in documents] == ["ConfigMap", "Service", "Deployment"]
    assert documents[0] is bundle[0]
    assert release_apply.documents_to_apply(None, manifest)[0]["kind"] == "Service"
    assert release_apply.documents_to_apply(bundle, None) == bundle
    with pytest.raises(kube_yaml.KubeYAMLError, match="document 2 is a list"):
        release_apply.documents_to_apply(None, SERVICE + "---\n- a\n")


# --------------------------------------------------------------------------------------------------
# kube_yaml: the reader's constructor and the block writer


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1, 2]\nb: *x\n",
        "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n",
        "a: !!binary aGVsbG8=\n",
        "a: 1.5\nb: .inf\nc: ~\nd: yes\ne: 0x1f\nf: =\ng: 2024-01-01\nh: 1:20\n",
        "!!set {a, b}\n",
        "!!omap [a: 1]\n",
        "a: !!str 1\nb: !!int '2'\n",
        "--- ~\n---\na: 1\n",
        "{a: [b, {c: d}]}\n",
        "a: !!timestamp 2024-01-01\n",
    ],
)
def test_the_reader_builds_what_pyyaml_builds(text):
    expected = [d for d in yaml.load_all(text, Loader=kube_yaml.KubeLoader) if not kube_yaml.is_empty(d)]
    assert kube_yaml.load_documents(text) == expected


@pytest.mark.parametrize(("text", "message"), [("? [1]\n: 2\n", "unhashable key"), ("a: !foo x\n", "'!foo'")])
def test_the_reader_refuses_what_pyyaml_refuses(text, message):
    with pytest.raises(kube_yaml.KubeYAMLError, match=message):
        kube_yaml.load_documents(text)


def test_aliases_and_recursion_keep_their_identity():
    shared = kube_yaml.load_one("a: &x [1, 2]\nb: *x\n")
    assert shared["a"] is shared["b"]
    loop = kube_yaml.load_one("&a {x: *a}\n")
    assert loop["x"] is loop


STRINGS = [
    *["yes", "No", "ON", "off", "true", "False", "null", "NULL", "~", "y", "n", "Y", "N", "=", "<<", "1", "0x1f"],
    *["1_000", "1:20", "2024-01-01", ".inf", ".NaN", "-", "---", "..."],
    *["2024-01-01T00:00:00Z", "- a", "a: b", "#c", "a #b", "%x", "@x", "`x", "", " ", "\n", "a\n", "a\n\n"],
    *["\na", " a\nb", "a \nb", "a\nb", "a\n b\n", "a\n\nb\n", "a\t\nb", "\ta\nb", "a\nb\t", "x\x85y", "|", ">"],
    *["0o17", "0b101", "+1", "-.5", "1e3", "1.5e+3", "python:3.12", "a:", "registry/x@sha256:ab", "k" * 2000],
    *["\u2028", "\ufeff", "\x7f", "\x00", "\x1b", "é", "🐸", "\u00a0", "\ufffe", "a\r\nb", "\"'\\"],
]


def test_the_block_writer_reads_back_with_any_reader():
    generator = random.Random(20240101)
    alphabet = [*"ab:-#&*!|>'\"%@`{}[],?=~ \t\n\r\\/.0123456789yYnN_<", "\x85", "\u2028", "🐸", "\x7f"]
    values = STRINGS + [
        "".join(generator.choice(alphabet) for _char in range(generator.randint(1, 10))) for _value in range(1500)
    ]
    for value in values:
        for data in ({"k": value}, {value: "x"}, [value], {"a": [value, {"b": value}]}, {"a": {"b": [[value]]}}):
            written = kube_yaml.dump_block(data)
            assert kube_yaml.load_one(written) == data, (value, written)
            assert yaml.safe_load(written) == data, (value, written)


def test_the_block_writer_output_is_readable_yaml():
    data = {
        "metadata": {"name": "ui", "labels": {"app.kubernetes.io/version": "0.1.0"}},
        "spec": {"replicas": 1, "paused": False, "selector": {}, "items": [], "x": None},
        "containers": [{"name": "ui", "image": "renku/ui:4.0", "args": ["--port", "80"], "script": "echo a\necho b\n"}],
        "nested": [["a", "b"], {}],
    }
    assert kube_yaml.dump_block(data) == (
        "metadata:\n"
        "  name: ui\n"
        "  labels:\n"
        '    app.kubernetes.io/version: "0.1.0"\n'
        "spec:\n"
        "  replicas: 1\n"
        "  paused: false\n"
        "  selector: {}\n"
        "  items: []\n"
        "  x: null\n"
        "containers:\n"
        "- name: ui\n"
        "  image: renku/ui:4.0\n"
        "  args:\n"
        '  - "--port"\n'
        '  - "80"\n'
        "  script: |\n"
        "    echo a\n"
        "    echo b\n"
        "nested:\n"
        "- - a\n"
        "  - b\n"
        "- {}\n"
    )


@pytest.mark.parametrize(
    "data", [{"f": 1.5}, {"d": b"x"}, "scalar", {}, {"k" * 2000: 1}, {"when": dt.date(2024, 1, 1)}]
)
def test_the_block_writer_leaves_other_values_to_the_dumper(data):
    assert yaml.safe_load(kube_yaml.dump_block(data)) == data


def test_dump_tree_writes_what_dump_one_writes():
    for document in kube_yaml.load_documents(rendered()):
        assert kube_yaml.dump_tree(document, allow_unicode=True) == kube_yaml.dump_one(
            document, sort_keys=False, allow_unicode=True
        )
        assert kube_yaml.dump_tree(document, sort_keys=True) == kube_yaml.dump_one(document)
