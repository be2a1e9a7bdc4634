from mmdata.manifests.normalize import ManifestConfig, load_manifest  # noqa: F401
from mmdata.manifests.table import write_clip_table  # noqa: F401
