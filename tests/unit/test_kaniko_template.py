"""The kaniko rewrite of a Renku project template's .gitlab-ci.yml."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.platform.kaniko import (
    KanikoEditError,
    kaniko_image_build,
)

KANIKO = "registry.site.internal/kaniko-project/executor:v1.23.2-debug"

# As Renku's project templates ship it (renku-project-template, python-minimal), plus a second job and
# comments that must survive untouched.
TEMPLATE = """\
# Renku project CI: builds the session image on every push.
variables:
  GIT_STRATEGY: fetch
  GIT_LFS_SKIP_SMUDGE: 1
  DOCKER_TLS_CERTDIR: ""

stages:
  - build
  - test

.rules: &skip_build
  except:
    variables:
      - $CI_COMMIT_MESSAGE =~ /\\[skip build\\]/

image_build:   # the session image
  stage: build
  image: docker:stable
  services:
    - docker:dind
  <<: *skip_build
  before_script:
    - docker login -u gitlab-ci-token -p $CI_JOB_TOKEN http://$CI_REGISTRY
  script: |
    CI_COMMIT_SHA_7=$(echo $CI_COMMIT_SHA | cut -c1-7)
    docker build --tag $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA_7 .
    docker push $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA_7
  tags:
    - image-build

# unit tests of the project code
pytest:
  stage: test
  image: python:3.12-slim
  script:
    - pip install -r requirements.txt
    - pytest
"""


def test_image_build_uses_kaniko_with_the_ca_appended():
    out = kaniko_image_build(TEMPLATE, KANIKO)
    job = yaml.safe_load(out)["image_build"]
    assert job["image"] == {"name": KANIKO, "entrypoint": [""]}
    assert "services" not in job and "before_script" not in job
    script = job["script"].splitlines()
    assert script[0] == "mkdir -p /kaniko/.docker"
    assert 'cat "$AIRGAP_CA_CERT" >> /kaniko/ssl/certs/additional-ca-cert-bundle.crt' in script
    assert "CI_COMMIT_SHA_7=$(echo $CI_COMMIT_SHA | cut -c1-7)" in script
    assert script[-1].startswith("/kaniko/executor ")
    assert '--destination "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA_7"' in script[-1]
    assert not any(line.startswith("docker ") for line in script)
    assert job["stage"] == "build"
    assert job["tags"] == ["image-build"]
    assert job["except"] == {"variables": ["$CI_COMMIT_MESSAGE =~ /\\[skip build\\]/"]}


def test_everything_outside_the_replaced_keys_is_byte_identical():
    out = kaniko_image_build(TEMPLATE, KANIKO)
    head = TEMPLATE[: TEMPLATE.index("image_build:")]
    tail = TEMPLATE[TEMPLATE.index("# unit tests") :]
    assert out.startswith(head + "image_build:   # the session image\n  stage: build\n")
    assert out.endswith("  tags:\n    - image-build\n\n" + tail)
    assert "  <<: *skip_build\n" in out
    before, after = yaml.safe_load(TEMPLATE), yaml.safe_load(out)
    assert {k: v for k, v in before.items() if k != "image_build"} == {
        k: v for k, v in after.items() if k != "image_build"
    }


def test_rewrite_is_idempotent():
    once = kaniko_image_build(TEMPLATE, KANIKO)
    assert kaniko_image_build(once, KANIKO) == once


def test_list_style_script_and_crlf_line_endings():
    text = (
        "image_build:\r\n"
        "    stage: build\r\n"
        "    image: docker:24\r\n"
        "    script:\r\n"
        "        - docker build -t $CI_REGISTRY_IMAGE:latest .\r\n"
        "        - docker push $CI_REGISTRY_IMAGE:latest\r\n"
    )
    out = kaniko_image_build(text, KANIKO, ca_variable="SITE_CA")
    assert "\n" not in out.replace("\r\n", "")
    job = yaml.safe_load(out)["image_build"]
    assert job["stage"] == "build"
    assert 'cat "$SITE_CA" >>' in job["script"]
    assert '--destination "$CI_REGISTRY_IMAGE:latest"' in job["script"]


def test_job_without_script_gets_the_default_destination():
    out = kaniko_image_build("image_build:\n  stage: build\n", KANIKO)
    assert '--destination "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"' in yaml.safe_load(out)["image_build"]["script"]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("build:\n  script: make\n", {}, "no top-level job 'image_build'"),
        ("image_build:\n  script: [a, b]\n", {}, "flow-style"),
        (TEMPLATE, {"ca_variable": "not valid"}, "not a CI variable name"),
    ],
)
def test_unusable_input_is_refused(text, kwargs, message):
    with pytest.raises(KanikoEditError, match=message):
        kaniko_image_build(text, KANIKO, **kwargs)
