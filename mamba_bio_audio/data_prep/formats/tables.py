"""Column tables to TSV or Parquet through pyarrow (the format follows the file name: ``.parquet`` or else
tab-separated text with a header line; missing values are empty fields)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["write_table"]


def write_table(columns: dict[str, list], path: str | Path, fmt: str | None = None) -> int:
    """Write ``columns`` (name → equal-length lists; None is missing) to ``path`` as ``fmt`` ("tsv" or
    "parquet"; default from the name). Returns the rows written."""
    path = Path(path)
    fmt = fmt or ("parquet" if path.suffix == ".parquet" else "tsv")
    table = pa.table(columns)
    if fmt == "parquet":
        pq.write_table(table, str(path))
    elif fmt == "tsv":
        with open(path, "wb") as fh:
            fh.write(("\t".join(table.column_names) + "\n").encode())
            pacsv.write_csv(table, fh, pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False))
    else:
        raise ValueError(f"table format must be tsv or parquet; got {fmt!r}")
    return table.num_rows
