"""DVG shard format v2 (v1 still read): WebDataset tars of stereo training clips, shared by
dvg and the trainer.

Depends only on the standard library, numpy and cv2, so the trainer can import it without torch
or the data engine's models. Format reference: docs/shard-format.md.
"""

from dvg.shards.format import (
    FIELDS,
    FORMAT_VERSION,
    OPTIONAL_FIELDS,
    READABLE_VERSIONS,
    ClipSample,
    ShardFormatError,
    decode_sample,
    encode_sample,
    make_key,
    member_name,
    read_meta,
    validate_key,
    video_id_for,
)
from dvg.shards.manifest import (
    MANIFEST_NAME,
    ShardEntry,
    file_md5,
    read_manifest,
    shard_entry,
    write_manifest,
)
from dvg.shards.reader import iter_clips, resolve_shards
from dvg.shards.tario import SampleTarWriter, iter_tar_samples, write_samples

__all__ = [
    "FIELDS",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "OPTIONAL_FIELDS",
    "READABLE_VERSIONS",
    "ClipSample",
    "SampleTarWriter",
    "ShardEntry",
    "ShardFormatError",
    "decode_sample",
    "encode_sample",
    "file_md5",
    "iter_clips",
    "iter_tar_samples",
    "make_key",
    "member_name",
    "read_manifest",
    "read_meta",
    "resolve_shards",
    "shard_entry",
    "validate_key",
    "video_id_for",
    "write_manifest",
    "write_samples",
]
