"""The compose subset parser: what it accepts, what it refuses (one line, InvalidInput)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitctl.deploy.compose import load_project, parse_project
from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir


def parse(tmp_path: Path, services: dict, **top) -> object:
    return parse_project({"services": services, **top}, tmp_path, tmp_path / "compose.yaml")


def test_full_service_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("x")
    (tmp_path / "site.json").write_text("{}")
    (tmp_path / "app.env").write_text("# comment\nA=1\nB=from-file\n")
    project = parse(tmp_path, {
        "web": {
            "image": "reg:5000/kitctl/web:1",
            "command": "serve --port 8000",
            "entrypoint": ["tini", "--"],
            "env_file": "app.env",
            "environment": {"B": "override", "C": 3, "D": True},
            "volumes": ["data:/data", "./site.json:/etc/site.json:ro",
                        {"type": "volume", "source": "data", "target": "/more", "read_only": True}],
            "ports": ["127.0.0.1:8080:80", "9000/udp"],
            "secrets": ["pw"],
            "depends_on": {"db": {"condition": "service_healthy"}},
            "healthcheck": {"test": "curl -f http://x/", "interval": "1m30s", "timeout": "500ms", "retries": 2,
                            "start_period": "10s"},
            "restart": "on-failure:3",
            "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "256M"}}},
            "labels": ["a=b"],
            "networks": {"default": {"aliases": ["www"]}},
            "user": 1000,
            "read_only": True,
            "tmpfs": "/tmp",
            "extra_hosts": ["hq:10.0.0.1"],
            "x-note": "ignored",
        },
        "db": {"image": "db:1"},
    }, volumes={"data": None}, secrets={"pw": {"file": "./secrets/pw"}}, **{"x-anything": 1})
    web = project.services["web"]
    assert project.name == tmp_path.name.lower().replace(".", "") or project.name
    assert web.command == ("serve", "--port", "8000")
    assert dict(web.environment) == {"A": "1", "B": "override", "C": "3", "D": "true"}
    assert [m.kind for m in web.mounts] == ["volume", "bind", "volume", "secret"]
    assert web.mounts[1].source == str(tmp_path / "site.json") and web.mounts[1].read_only
    assert web.mounts[3].target == "/run/secrets/pw" and web.mounts[3].read_only
    assert web.ports[0].host_ip == "127.0.0.1" and web.ports[0].host_port == 8080 and web.ports[0].container_port == 80
    assert web.ports[1].host_port is None and web.ports[1].protocol == "udp"
    assert web.healthcheck.test == ("CMD-SHELL", "curl -f http://x/")
    assert web.healthcheck.interval == 90 and web.healthcheck.timeout == 0.5 and web.healthcheck.start_period == 10
    assert web.cpus == 0.5 and web.memory == 256 * 1024**2
    assert web.networks == (("default", ("www",)),)
    assert web.user == "1000" and web.read_only and web.tmpfs == ("/tmp",)
    assert project.volumes["data"].name == f"{project.name}_data"
    assert project.networks["default"].name == f"{project.name}_default"
    assert web.writes_named_volume()


@pytest.mark.parametrize("services, top, message", [
    ({"web": {"image": "x", "build": "."}}, {}, "`build` is not supported"),
    ({"web": {"image": "x", "privileged": True}}, {}, "`privileged` is not supported"),
    ({"web": {"command": "x"}}, {}, "`image` is required"),
    ({"web": {"image": "x", "ports": ["127.0.0.1:99999:80"]}}, {}, "out of range"),
    ({"web": {"image": "x", "ports": ["a:b"]}}, {}, "is not [HOST_IP:]"),
    ({"web": {"image": "x", "volumes": ["nope:/data"]}}, {}, "volume 'nope' is not declared"),
    ({"web": {"image": "x", "volumes": ["./missing:/data"]}}, {}, "does not exist"),
    ({"web": {"image": "x", "volumes": ["data:relative"]}}, {"volumes": {"data": {}}}, "must be an absolute path"),
    ({"web": {"image": "x", "depends_on": ["db"]}}, {}, "unknown service 'db'"),
    ({"web": {"image": "x", "depends_on": {"web": {}}}}, {}, "cannot depend on itself"),
    ({"web": {"image": "x", "depends_on": {"db": {"condition": "soon"}}}, "db": {"image": "y"}}, {}, "condition 'soon'"),
    ({"web": {"image": "x", "restart": "sometimes"}}, {}, "restart"),
    ({"web": {"image": "x", "healthcheck": {"test": ["RUN", "x"]}}}, {}, "CMD or CMD-SHELL"),
    ({"web": {"image": "x", "healthcheck": {"test": "x", "interval": "soon"}}}, {}, "not a duration"),
    ({"web": {"image": "x", "deploy": {"mode": "global"}}}, {}, "only `replicas` and `resources.limits`"),
    ({"web": {"image": "x", "deploy": {"replicas": 0}}}, {}, "replicas must be a whole number from 1 to 32"),
    ({"web": {"image": "x", "deploy": {"replicas": "2"}}}, {}, "replicas must be a whole number from 1 to 32"),
    ({"web": {"image": "x", "deploy": {"replicas": True}}}, {}, "replicas must be a whole number from 1 to 32"),
    ({"web": {"image": "x", "deploy": {"resources": {"limits": {"pids": 5}}}}}, {}, "`pids` is not supported"),
    ({"web": {"image": "x", "deploy": {"resources": {"limits": {"memory": "lots"}}}}}, {}, "not a size"),
    ({"web": {"image": "x", "networks": ["other"]}}, {}, "network 'other' is not declared"),
    ({"web": {"image": "x", "secrets": ["s"]}}, {}, "secret 's' is not declared"),
    ({"web": {"image": "x"}}, {"secrets": {"s": {"external": True}}}, "only `file:` secrets"),
    ({"web": {"image": "x", "environment": {"A": "$HOME"}}}, {}, "variable interpolation"),
    ({"web": {"image": "x"}}, {"configs": {}}, "`configs` is not supported"),
    ({}, {}, "non-empty mapping"),
])
def test_unsupported_or_wrong_input_is_one_clear_line(tmp_path: Path, services, top, message) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(tmp_path, services, **top)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_dollar_escape_is_unescaped_like_compose(tmp_path: Path) -> None:
    project = parse(tmp_path, {"web": {"image": "x", "environment": {"PRICE": "$$5", "RAW": "a$$b$$"}}})
    assert dict(project.services["web"].environment) == {"PRICE": "$5", "RAW": "a$b$"}
    # the raw (escaped) form is what the config hash covers, as `kitctl plan` sees it
    assert project.raw_services["web"]["environment"]["PRICE"] == "$$5"


def test_external_resources_keep_their_names(tmp_path: Path) -> None:
    project = parse(tmp_path, {"web": {"image": "x", "networks": ["hq"]}},
                    networks={"hq": {"external": True, "name": "hq-net"}}, volumes={"v": {"external": True}})
    assert project.networks["hq"].name == "hq-net" and project.networks["hq"].external
    assert project.volumes["v"].name == "v"


def test_load_project_reports_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_project(tmp_path)
    (tmp_path / "compose.yaml").write_text("services: [unclosed\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_project(tmp_path)


def test_project_name_defaults_to_the_directory_like_compose_v1(tmp_path: Path) -> None:
    site = tmp_path / "Star.Shop-1"
    site.mkdir()
    SiteDir(site).compose.write_text("services:\n  web:\n    image: x\n")
    assert load_project(site).name == "starshop-1"


def test_volumes_on_a_data_directory_keep_their_local_driver_options(tmp_path) -> None:
    """What render writes for --data-dir: a `local` volume bound onto <data_dir>/<volume>."""
    from kitctl.deploy.compose import parse_project

    data = {"services": {"db": {"image": "kitctl/db:1", "volumes": ["db-data:/var/lib/postgresql/data"]}},
            "volumes": {"db-data": {"driver": "local",
                                    "driver_opts": {"type": "none", "o": "bind", "device": "/srv/kit/db-data"}}}}
    volume = parse_project(data, tmp_path, tmp_path / "compose.yaml", "shop").volumes["db-data"]
    assert volume.bind_device == "/srv/kit/db-data"
    assert dict(volume.driver_opts) == {"type": "none", "o": "bind", "device": "/srv/kit/db-data"}


@pytest.mark.parametrize("body, message", [
    ({"driver": "nfs"}, "volumes.v.driver: only `local` is supported"),
    ({"driver_opts": {"device": "relative/dir", "o": "bind"}}, "device must be an absolute path"),
    ({"driver_opts": {"device": "/srv/../etc", "o": "bind"}}, "device must be an absolute path"),
    ({"driver_opts": {"o": "bind", "mountpoint": "/x"}}, "driver_opts"),
    ({"driver_opts": {"o": 1}}, "must map names to strings"),
])
def test_other_volume_drivers_and_options_are_refused(tmp_path, body, message) -> None:
    from kitctl.deploy.compose import parse_project
    from kitcore.errors import InvalidInput

    data = {"services": {"db": {"image": "kitctl/db:1"}}, "volumes": {"v": body}}
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.").replace("`", ".")):
        parse_project(data, tmp_path, tmp_path / "compose.yaml", "shop")


def test_networks_take_no_driver(tmp_path) -> None:
    from kitctl.deploy.compose import parse_project
    from kitcore.errors import InvalidInput

    with pytest.raises(InvalidInput, match="networks.n"):
        parse_project({"services": {"a": {"image": "x:1"}}, "networks": {"n": {"driver": "local"}}},
                      tmp_path, tmp_path / "compose.yaml", "shop")
