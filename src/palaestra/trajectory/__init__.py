"""The one trajectory schema, the crash-safe run store, and labels added to a run later."""

from palaestra.trajectory._export import (
    episode_row,
    export_hf,
    export_parquet,
    export_rows_jsonl,
    to_dataset,
)
from palaestra.trajectory._labels import (
    ORM_LABELS_FILE,
    ORMLabel,
    read_orm_labels,
    write_orm_labels,
)
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
    "ORM_LABELS_FILE",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "TREE_METADATA_KEY",
    "TREE_SCHEMA_VERSION",
    "Episode",
    "ErrorInfo",
    "ORMLabel",
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
    "export_rows_jsonl",
    "read_jsonl",
    "read_orm_labels",
    "to_dataset",
    "write_orm_labels",
]
