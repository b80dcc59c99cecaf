"""``art-denoise reproduce``: the source works' result tables, rebuilt and re-attacked.

Each table of :data:`TABLES` trains one model per row (and seed) the way the source
describes, attacks it with the project's strongest default evaluation (a parameter-free
attack at every eps, EOT for randomised defenses) and writes ``results.md`` with the
source's numbers beside ours, row by row, our setting named:

- ``xie``: feature-denoising blocks on top of adversarial training (Xie et al. 2019,
  Tables 1 and 3);
- ``blurnet``: low-pass layers after the first convolution against RP2 (Raju & Lipasti
  2019, Table 2);
- ``autoencoder``: stacked noisy denoising autoencoders in front of the classifier
  (the course report's FGSM table).

Example:
    >>> sorted(TABLES)
    ['autoencoder', 'blurnet', 'xie']
"""

from __future__ import annotations

from art_denoise.reproduce.runner import RESULT_FILES, ROW_FILE, TABLES, get_table, reproduce
from art_denoise.reproduce.table import PRESETS, Column, RowJob, RowResult, Table, TableContext

__all__ = [
    "PRESETS",
    "RESULT_FILES",
    "ROW_FILE",
    "TABLES",
    "Column",
    "RowJob",
    "RowResult",
    "Table",
    "TableContext",
    "get_table",
    "reproduce",
]
