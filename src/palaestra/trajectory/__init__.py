"""The one trajectory schema and the crash-safe run store."""

from palaestra.trajectory._export import episode_row, export_hf, export_parquet, to_dataset
from palaestra.trajectory._schema import (
    OUTCOMES,
    SCHEMA_VERSION,
    TREE_METADATA_KEY,
    TREE_SCHEMA_VERSION,
    Episode,
    ErrorInfo,
    Outcome,
    Run,
    SearchTree,
    Step,
    TreeNode,
)
from palaestra.trajectory._store import DB_NAME, RunStore, StoreError, read_jsonl

__all__ = [
    "DB_NAME",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "TREE_METADATA_KEY",
    "TREE_SCHEMA_VERSION",
    "Episode",
    "ErrorInfo",
    "Outcome",
    "Run",
    "RunStore",
    "SearchTree",
    "Step",
    "StoreError",
    "TreeNode",
    "episode_row",
    "export_hf",
    "export_parquet",
    "read_jsonl",
    "to_dataset",
]
