"""Regenerate the vendored z2jh files in this folder (run by hand; not part of the tests).

    git clone https://github.com/jupyterhub/zero-to-jupyterhub-k8s /tmp/z2jh
    git -C /tmp/z2jh checkout 4.4.0
    python tests/schemas/z2jh/vendor.py /tmp/z2jh

Writes ``values.schema.json`` as z2jh's own ``tools/generate-json-schema.py`` makes the
schema that the chart ships (``description`` keys dropped) and copies the chart's default
``values.yaml`` (Helm validates the user's values merged over these defaults).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent


def drop_descriptions(node: dict) -> None:
    """As z2jh's clean_jsonschema: descriptions go, except under ``properties`` names."""
    node.pop("description", None)
    for value in node.get("properties", {}).values():
        if isinstance(value, dict):
            drop_descriptions(value)


def main(checkout: Path) -> None:
    chart = checkout / "jupyterhub"
    schema = yaml.safe_load((chart / "values.schema.yaml").read_text())
    drop_descriptions(schema)
    (HERE / "values.schema.json").write_text(json.dumps(schema, sort_keys=True) + "\n")
    shutil.copyfile(chart / "values.yaml", HERE / "values.yaml")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
