"""What a classifier needs besides its detectors: the secret key, the canary store and the
exact-data-match index.

Stage: classification (its edge: this module opens the files the config names; the scorer and
the pipeline only get the loaded objects). In: the `[classify]` section of the config. Out:
`ClassifyAssets`, or `AssetError` with one line for the operator.

The rules an operator can predict:
- Neither a canary store nor an EDM index configured (replays of sample traffic): the key is
  random for the run. Distinct values are counted per object, so no key needs to persist.
- A store or an index configured and present: the secret key file must exist (both were made
  with it: `sluice canary new`, `sluice edm load`); a store or an index made with another key
  is an error, since nothing in it could ever match.
- Configured but absent (no canary minted yet, no export loaded yet): not an error, said in
  `notes` so the sensor's start-up line tells the operator it is not armed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sensor.classify.canary import CanaryError, CanaryStore
from sensor.classify.edm import INDEX_FILE, EdmError, EdmIndex
from sensor.classify.secret import SecretError, load_secret
from sensor.config import ClassifyConfig


class AssetError(Exception):
    """A configured canary store, EDM index or key that cannot be used."""


@dataclass(slots=True)
class ClassifyAssets:
    key: bytes
    canaries: CanaryStore | None = None  # None: no store configured or none there yet
    edm: EdmIndex | None = None
    edm_window: int = 300
    notes: list[str] = field(default_factory=list)  # for the start-up line

    def close(self) -> None:
        if self.edm is not None:
            self.edm.close()

    def describe(self) -> str:
        """One line: what this run's classification is armed with."""
        parts = [f"{len(self.canaries)} canaries" if self.canaries is not None else "no canaries"]
        if self.edm is not None:
            parts.append(f"EDM index of {self.edm.records:,} records")
        else:
            parts.append("no EDM index")
        return ", ".join(parts + self.notes)


def edm_index_path(directory: str) -> Path:
    """The index file inside the configured directory (a path to the file itself also does)."""
    path = Path(directory)
    return path if path.name == INDEX_FILE or path.is_file() else path / INDEX_FILE


def load_assets(config: ClassifyConfig) -> ClassifyAssets:
    """The key, canary store and EDM index that `config` names (see the module docstring)."""
    notes: list[str] = []
    store_path = Path(config.canaries) if config.canaries else None
    index_path = edm_index_path(config.edm_index) if config.edm_index else None
    if store_path is not None and not store_path.exists():
        notes.append(f"canary store {store_path} not there yet")
        store_path = None
    if index_path is not None and not index_path.exists():
        notes.append(f"EDM index {index_path} not there yet")
        index_path = None
    if store_path is None and index_path is None:
        return ClassifyAssets(os.urandom(32), edm_window=config.edm_window, notes=notes)
    if not config.secret:
        raise AssetError(
            "classify.secret must name the secret key file that the canary store and the "
            "EDM index were made with"
        )
    try:
        key = load_secret(config.secret, create=False)
    except SecretError as exc:
        raise AssetError(str(exc)) from None
    assets = ClassifyAssets(key, edm_window=config.edm_window, notes=notes)
    try:
        if store_path is not None:
            assets.canaries = CanaryStore.load(store_path, key)
        if index_path is not None:
            assets.edm = EdmIndex.open(index_path, key)
    except (CanaryError, EdmError) as exc:
        assets.close()
        raise AssetError(str(exc)) from None
    if not config.enabled:
        if assets.edm is not None:
            notes.append("the EDM index is not matched while [classify] enabled = false")
        if assets.canaries is not None:
            notes.append("canaries are looked up in flow metadata only ([classify] is off)")
    return assets
