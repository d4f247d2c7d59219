"""The wheel carries the top-level schemas/ folder as the package data of `hookstream.schemas`.

schemas/ stays at the top of the repository, where teams reading the topics from other
languages look for it; this mapping copies it into the wheel (no symlink, no build step).
Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["hookstream*", "processors*", "connectors*"]),
        "hookstream.schemas",
    ],
    package_dir={"hookstream.schemas": "schemas"},
)
