"""Packaging that pyproject.toml cannot say: the wheel also carries the repo's shipped trees.

pyproject.toml's ``packages.find`` cannot add packages that live outside the found tree, so
the package list is built here: the host package ``insitu`` (host/), the firmware package
``insitu_node`` (firmware/, imported by the host for the protocol codec), and three data
packages mapped from the repo's own directories, which stay the source of truth:

    firmware/            -> insitu/_kit/firmware   main.py, manifest.py, insitu_node/**.py
    hardware/networks/   -> insitu/_kit/networks   the bundled network files
    hardware/boards/     -> insitu/_kit/boards     board pin maps

insitu.resources finds them there in an installed wheel, and in the checkout otherwise.
tests/test_packaging.py builds the wheel and checks what it contains.
"""

from setuptools import find_namespace_packages, setup

KIT = {
    "insitu._kit.firmware": "firmware",
    "insitu._kit.networks": "hardware/networks",
    "insitu._kit.boards": "hardware/boards",
}
SKIP = ["*__pycache__*"]

setup(
    packages=[
        *find_namespace_packages("host", include=["insitu", "insitu.*"], exclude=SKIP),
        *find_namespace_packages(
            "firmware", include=["insitu_node", "insitu_node.*"], exclude=SKIP
        ),
        *KIT,
    ],
    package_dir={"insitu": "host/insitu", "insitu_node": "firmware/insitu_node", **KIT},
    package_data={
        "insitu": ["data/*.csv", "view/*.html"],
        # main.py and manifest.py are picked up as modules of the package; the node package is
        # data here (a board's copy), not importable as insitu._kit.firmware.insitu_node
        "insitu._kit.firmware": ["insitu_node/**/*.py"],
        "insitu._kit.networks": ["*.toml"],
        "insitu._kit.boards": ["*.toml"],
    },
)
