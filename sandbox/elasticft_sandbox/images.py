"""The project's own images as the sandbox kubelet knows them: what each would run (pure).

The sandbox has no container runtime, so an image is only a name; a container runs as a local process
of this installation. For the project's images the kubelet knows the ENTRYPOINT and CMD their
Dockerfiles declare, and applies Docker's rules: `command` replaces the entrypoint (and drops the CMD),
`args` replaces the CMD. A container of any other image must say what to run with `command`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    """ENTRYPOINT and CMD of an image, as in its Dockerfile."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


# Repository (no tag or digest) -> what Dockerfile.operator and Dockerfile.trainer declare.
PROJECT_IMAGES: dict[str, Image] = {
    "ghcr.io/elasticft/operator": Image(
        ("elasticft",), ("run", "--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz")),
    "ghcr.io/elasticft/trainer": Image((), ("python", "-m", "elasticft_trainer")),
}


class UnknownImage(Exception):
    """A container of an image the sandbox does not know, without a `command` to run instead."""


def repository(image: str) -> str:
    """`ghcr.io/elasticft/operator` of `ghcr.io/elasticft/operator:0.1.0` or `...@sha256:...`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def container_argv(image: str, command: list[str], args: list[str]) -> list[str]:
    """The process a container runs, by Docker's rules; `UnknownImage` if that cannot be known."""
    if command:
        return [*command, *args]
    known = PROJECT_IMAGES.get(repository(image))
    if known is None:
        raise UnknownImage(
            f"image {image!r} is not one of the project's images ({', '.join(sorted(PROJECT_IMAGES))}), whose "
            "entrypoints the sandbox knows; the sandbox runs processes, not images: give the container a command")
    argv = [*known.entrypoint, *(args or known.cmd)]
    if not argv:
        raise UnknownImage(f"image {image!r} declares neither an entrypoint nor a command; give the container one")
    return argv
