from tests.infra.fixtures import docker_engine, registry, ssh_url  # noqa: F401
