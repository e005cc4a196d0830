"""Discovery over documents: every pod spec place, CRD fields, env/args candidates, warnings."""

from __future__ import annotations

from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
    Discovered,
    confirm_candidates,
    scan_documents,
    value_sets,
)

DOCS = [
    {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx",
                            "env": [
                                {"name": "PROXY_IMAGE", "value": "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"},
                                {"name": "LOOKS_LIKE", "value": "abc/def:ghi"},
                                {"name": "REDIS", "value": "redis:6379"},
                                {"name": "FROM", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                            ],
                            "args": ["--sidecar-image=ghcr.io/org/sidecar:1.0", "--port=8080"],
                        }
                    ],
                    "ephemeralContainers": [{"name": "debug", "image": "ghcr.io/org/debug:2"}],
                }
            }
        },
    },
    {
        "kind": "Job",
        "metadata": {"name": "migrate", "annotations": {"helm.sh/hook": "pre-install"}},
        "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "docker.io/renku/data-tasks:0.79.0"}]}}},
    },
    {
        "kind": "AmaltheaSession",
        "metadata": {"name": "s"},
        "spec": {"session": {"image": "renku/session:1"}, "extraContainers": [{"image": "x/y:1"}]},
    },
    {
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"podTemplate": {"spec": {"containers": [{"name": "w", "image": "alpine:3.20"}]}}},
    },
    # a ConfigMap value shaped like an image is a candidate too (the registry decides)
    {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": "not/an-image:1", "port": "8080"}},
]


def scan() -> Discovered:
    found = Discovered()
    scan_documents(
        DOCS,
        found,
        ["Workflow:spec.podTemplate.spec"],
        ["AmaltheaSession:spec.session.image", "AmaltheaSession:spec.extraContainers.*.image"],
    )
    return found


def test_every_place_is_found():
    images = scan().images
    assert set(images) == {
        "docker.io/library/busybox:1.36",
        "docker.io/library/nginx:latest",
        "ghcr.io/org/debug:2",
        "docker.io/renku/data-tasks:0.79.0",
        "docker.io/renku/session:1",
        "docker.io/x/y:1",
        "docker.io/library/alpine:3.20",
    }
    assert any("(hook)" in where for where in images["docker.io/renku/data-tasks:0.79.0"])
    assert any("extraContainers[0]" in where for where in images["docker.io/x/y:1"])


def test_implicit_latest_warns():
    assert any("'nginx' has no tag" in w for w in scan().warnings)


def test_env_and_args_are_candidates_until_confirmed():
    found = scan()
    assert set(found.candidates) == {
        "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
        "docker.io/abc/def:ghi",
        "ghcr.io/org/sidecar:1.0",
        "docker.io/not/an-image:1",
    }
    existing = {"quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", "ghcr.io/org/sidecar:1.0"}
    confirm_candidates(found, lambda ref: ref in existing, parallel=2)
    assert existing <= set(found.images)
    assert set(found.rejected) == {"docker.io/abc/def:ghi", "docker.io/not/an-image:1"}
    assert not found.candidates


def test_unreachable_registry_confirms_nothing():
    found = scan()

    def refuse(_ref: str) -> bool:
        raise ConnectionError("no route")

    confirm_candidates(found, refuse)
    assert "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0" in found.rejected


def test_value_sets():
    assert value_sets({"chart": "c"}) == [([], {})]
    assert value_sets({"chart": "c", "values_sets": [["a.yaml", "b.yaml"]], "values": [{"x": 1}]}) == [
        (["a.yaml", "b.yaml"], {}),
        ([], {"x": 1}),
    ]


def test_images_named_in_secret_and_configmap_values_are_candidates():
    import base64

    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "renku-notebooks"},
            "stringData": {
                "NB_SESSIONS__GIT_RPC_SERVER__IMAGE": "renku/git-rpc-server:1.31.1",
                "NB_SESSIONS__DEFAULT_IMAGE": "renku/renkulab-py:3.9-0.18.0",
                "NB_SESSIONS__GIT_CLONE__SENTRY__DSN": None,
                "NB_K8S__RENKU_NAMESPACE": "renku",
            },
            "data": {"X": base64.b64encode(b"ghcr.io/org/tool:2").decode(), "BIN": "////"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"img": "quay.io/a/b:1", "n": None},
        },
    ]
    found = Discovered()
    scan_documents(docs, found, [], [])
    assert set(found.candidates) == {
        "docker.io/renku/git-rpc-server:1.31.1",
        "docker.io/renku/renkulab-py:3.9-0.18.0",
        "ghcr.io/org/tool:2",
        "quay.io/a/b:1",
    }
    assert found.candidates["docker.io/renku/git-rpc-server:1.31.1"] == [
        "Secret/renku-notebooks stringData.NB_SESSIONS__GIT_RPC_SERVER__IMAGE"
    ]
    confirm_candidates(found, lambda ref: ref != "quay.io/a/b:1")
    assert "docker.io/renku/renkulab-py:3.9-0.18.0" in found.images and "quay.io/a/b:1" in found.rejected
