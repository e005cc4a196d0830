"""Image references: normalisation, the env/args candidate filter, mapping to the destination."""

from __future__ import annotations

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import (
    ImageRefError,
    candidates_in_arg,
    is_implicit_latest,
    looks_like_image,
    map_repository,
    parse_image,
    rewrite_source,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
        ("index.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20"),
        ("quay.io/keycloak/keycloak:26.0.7", "quay.io/keycloak/keycloak:26.0.7"),
        ("localhost/team/app:1", "localhost/team/app:1"),
        ("127.0.0.1:5001/docker.io/library/alpine:3.20", "127.0.0.1:5001/docker.io/library/alpine:3.20"),
        (f"ghcr.io/org/app@{DIGEST}", f"ghcr.io/org/app@{DIGEST}"),
        (f"ghcr.io/org/app:1.0@{DIGEST}", f"ghcr.io/org/app:1.0@{DIGEST}"),
        ("quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"),
    ],
)
def test_parse_normalises(text, expected):
    assert str(parse_image(text)) == expected


def test_digest_is_the_reference_when_pinned():
    ref = parse_image(f"alpine:3.20@{DIGEST}")
    assert ref.reference == DIGEST
    assert ref.pinned(DIGEST) == f"docker.io/library/alpine@{DIGEST}"


@pytest.mark.parametrize("text", ["", "UPPER/case:1", "a b:c", "http://x/y:z", "app:"])
def test_invalid_references_raise(text):
    with pytest.raises(ImageRefError):
        parse_image(text)


def test_implicit_latest_detection():
    assert is_implicit_latest("nginx")
    assert is_implicit_latest("127.0.0.1:5001/foo/bar")
    assert not is_implicit_latest("nginx:1")
    assert not is_implicit_latest(f"nginx@{DIGEST}")


@pytest.mark.parametrize(
    ("text", "candidate"),
    [
        ("quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", True),
        ("team/tool:1.0", True),
        (f"ghcr.io/org/app@{DIGEST}", True),
        ("redis:6379", False),  # host:port, not an image
        ("postgres", False),  # no tag: too ambiguous in an env value
        ("https://example.org/a:b", False),
        ("some text: with spaces", False),
        ("/usr/local/bin:/usr/bin", False),
        ("true", False),
    ],
)
def test_looks_like_image(text, candidate):
    assert looks_like_image(text) is candidate


def test_candidates_in_args():
    assert candidates_in_arg("--image=quay.io/a/b:1") == ["quay.io/a/b:1"]
    assert candidates_in_arg("--sidecar=team/x:2,--other=3") == ["team/x:2"]
    assert candidates_in_arg("--verbose") == []


def test_map_repository_keeps_host_under_prefix():
    ref = parse_image("alpine:3.20")
    assert map_repository(ref, "mirror", True) == "mirror/docker.io/library/alpine"
    assert map_repository(ref, "", False) == "library/alpine"
    assert map_repository(ref, "/site/", False) == "site/library/alpine"
    assert map_repository(parse_image("127.0.0.1:5074/team/app:1"), "site", True) == "site/127.0.0.1_5074/team/app"


def test_rewrite_source_per_registry():
    rewrites = {"docker.io": "127.0.0.1:5001/docker.io", "quay.io": "mirror.example:443"}
    assert rewrite_source(parse_image("alpine:3.20"), rewrites) == ("127.0.0.1:5001", "docker.io/library/alpine")
    assert rewrite_source(parse_image("quay.io/k/k:1"), rewrites) == ("mirror.example:443", "k/k")
    assert rewrite_source(parse_image("ghcr.io/o/a:1"), rewrites) == ("ghcr.io", "o/a")
