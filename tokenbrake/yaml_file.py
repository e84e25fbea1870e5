"""Reading a YAML config file with PyYAML's safe loader, refusing a key given twice.

PyYAML keeps the last of two equal keys without a word, so a block appended to a file that
already has its section (`models:` twice) silently drops the first one's entries.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(yaml.YAMLError):
    """A mapping repeats a key; the message names the key and both lines."""


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, but a mapping that repeats a key is an error, not an overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may override on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise DuplicateKey(f"line {line}: key {key!r} is given twice (first on line {seen[key]}): "
                                   f"merge the two into one")
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
