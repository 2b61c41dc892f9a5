"""The converted-model cache: a new replica downloads what another one converted.

Layout under `--cache-uri` (docs/converter.md, "Converted-model cache"):

    <cache>/<namespace>/<key>/<entry-id>/...     the converted model's files
    <cache>/<namespace>/<key>/manifest.json      written last: files (size, sha256),
                                                 the conversion report, the key's inputs,
                                                 optionally an HMAC-SHA256 signature
    <cache>/<namespace>/<key>/lock.<n>           one conversion per key at a time

A reader that sees a manifest sees a complete entry; a crash mid-publish leaves files
no manifest names. Everything here fails closed: an unreadable, unsigned (when signing is
on), inconsistent or failing entry is a miss, and a cache that cannot be reached or
written never fails the pod. pipeline.py orders the steps; this package does them:

- :mod:`.key`: the key (source content, settings, TensorFlow/TensorRT versions, GPU);
- :mod:`.store`: the stores (a PVC path, S3, GCS), with exclusive create;
- :mod:`.manifest`: an entry's manifest, its signature and the checks of the files;
- :mod:`.lock`: one conversion per key at a time;
- :mod:`.check`: a hit's load and warmup check, in a child process;
- :mod:`.model_cache`: :class:`ModelCache`, one run's use of all of them (the facade).
"""

from trtserve_converter.cache.manifest import BadCacheEntryError, Manifest, verify_files
from trtserve_converter.cache.model_cache import ModelCache, open_cache

__all__ = ["BadCacheEntryError", "Manifest", "ModelCache", "open_cache", "verify_files"]
