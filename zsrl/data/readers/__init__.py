"""Readers of other dataset formats, each registered as a data source of :mod:`zsrl.data.sources`.

- ``exorl`` (:mod:`zsrl.data.readers.exorl`): a directory of ExORL episode files, with physics
  states, so rewards are relabelled for every task;
- ``d4rl`` (:mod:`zsrl.data.readers.d4rl`): a D4RL HDF5 file, without physics states, so it holds
  the rewards of the one task it was recorded for;
- ``minari`` (:mod:`zsrl.data.readers.minari`): a local Minari dataset, by id or directory, with the
  rewards of its environment's task, and physics states where its infos hold them;
  :func:`write_minari` writes one of our datasets as one.

All read ``cfg.data.path``. Importing :mod:`zsrl.data.sources` imports this package, so the sources
are registered whenever the registry exists.
"""

from zsrl.data.readers.common import data_path
from zsrl.data.readers.d4rl import (
    D4RL_REFERENCE_RETURNS,
    d4rl_domain,
    d4rl_normalized_score,
    read_d4rl,
)
from zsrl.data.readers.exorl import read_exorl
from zsrl.data.readers.minari import MINARI_DOMAINS, read_minari, write_minari

__all__ = [
    "D4RL_REFERENCE_RETURNS",
    "MINARI_DOMAINS",
    "d4rl_domain",
    "d4rl_normalized_score",
    "data_path",
    "read_d4rl",
    "read_exorl",
    "read_minari",
    "write_minari",
]
