"""Module parameters become typed settings once, at the module boundary."""

from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import (
    DEFAULT_NODE_CA_PATH,
    ChartMirrorSettings,
    ImageMirrorSettings,
    MirrorParamError,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import ImageRefError


def image_params(**changes):
    params = {
        "mode": "direct",
        "images": ["alpine:3.20"],
        "destination": "registry.site:5000",
        "destination_username": "mirror",
        "destination_password": "secret",
        "prefix": "mirror",
        "ca_file": "/etc/pki/site-ca.crt",
        "source_credentials": [{"registry": "up.example", "username": "u", "password": "p", "ca_file": None}],
        "source_rewrites": {"docker.io": "up.example/docker.io"},
        "parallel": -3,
    }
    params.update(changes)
    return params


def test_image_settings_carry_the_copy_engine_settings():
    settings = ImageMirrorSettings.from_params(image_params())
    engine = settings.engine
    assert (engine.destination.host, engine.destination.username, engine.destination.password) == (
        "registry.site:5000",
        "mirror",
        "secret",
    )
    assert engine.ca_file == settings.ca_file == "/etc/pki/site-ca.crt"
    assert engine.credentials["up.example"].username == "u"
    assert engine.parallel == 1 and engine.prefix == "mirror"
    assert settings.images == ("alpine:3.20",) and settings.helm == "helm" and settings.verify == "receipt"
    assert settings.node_ca_path == DEFAULT_NODE_CA_PATH


def test_settings_are_frozen():
    settings = ImageMirrorSettings.from_params(image_params())
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.mode = "export"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.engine.parallel = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"destination": None}, "mode=direct needs destination"),
        ({"mode": "import", "bundle": None}, "mode=import needs bundle"),
        ({"destination": "registry.site/path"}, "put paths in prefix"),
        ({"source_rewrites": {"docker.io": "https://up"}}, "no scheme"),
    ],
)
def test_unusable_parameters_are_named(changes, message):
    with pytest.raises(MirrorParamError, match=message):
        ImageMirrorSettings.from_params(image_params(**changes))


def test_bad_image_reference_is_named():
    with pytest.raises(ImageRefError):
        ImageMirrorSettings.from_params(image_params(images=["UPPER/case:tag"]))


def test_chart_settings_share_the_destination_shape():
    settings = ChartMirrorSettings.from_params(
        {"charts": [{"chart": "renku", "version": "2.19.3"}], "destination": "registry.site:5000", "prefix": "charts"}
    )
    assert settings.destination.host == "registry.site:5000" and settings.destination.prefix == "charts"
    assert settings.charts == ({"chart": "renku", "version": "2.19.3"},) and settings.download_dir is None
    with pytest.raises(MirrorParamError, match="put paths in prefix"):
        ChartMirrorSettings.from_params({"destination": "oci://registry.site/charts"})


def test_passwords_stay_out_of_reprs():
    settings = ImageMirrorSettings.from_params(image_params())
    assert "secret" not in repr(settings) and "'p'" not in repr(settings.engine)
