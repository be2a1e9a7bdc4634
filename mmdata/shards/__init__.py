"""Final corpus: webdataset tar shards (one sample per clip), their index, and the tools that check,
inspect and summarise them. `ShardWriter` is the reusable core (deterministic tar writing)."""
from mmdata.shards.writer import ShardInfo, ShardWriter

__all__ = ["ShardInfo", "ShardWriter"]
