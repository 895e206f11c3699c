"""Copy planning: children are pushed before the indexes that list them, whatever order they were found in."""

from __future__ import annotations

import hashlib
import json

from chalicelib.sync.copy import push_levels
from chalicelib.registry.manifests import OCI_INDEX, OCI_MANIFEST, Manifest


def _manifest(media_type: str, document: dict) -> Manifest:
    raw = json.dumps(document).encode()
    return Manifest(digest="sha256:" + hashlib.sha256(raw).hexdigest(), media_type=media_type, raw=raw)


def test_an_index_found_before_its_child_is_still_pushed_after_it() -> None:
    image = _manifest(OCI_MANIFEST, {"schemaVersion": 2, "config": {"digest": "sha256:" + "1" * 64, "size": 1},
                                     "layers": []})
    index = _manifest(OCI_INDEX, {"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.raw)}]})
    outer = _manifest(OCI_INDEX, {"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_INDEX, "digest": index.digest, "size": len(index.raw)}]})
    assert push_levels([outer, index, image]) == {image.digest: 0, index.digest: 1, outer.digest: 2}


def test_a_child_already_in_the_destination_does_not_raise_its_index_level() -> None:
    index = _manifest(OCI_INDEX, {"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "size": 3}]})
    assert push_levels([index]) == {index.digest: 0}
