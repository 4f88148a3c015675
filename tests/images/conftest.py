from tests.infra.fixtures import built_images, docker_engine, registry  # noqa: F401
