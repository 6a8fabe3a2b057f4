"""A versioned model registry in a data folder: every bundle a line may serve, which one it serves, and why.

Layout: `<data dir>/models/registry.json` and one bundle folder per version beside it. The file says
which version is active and keeps an append-only history (added, promoted, rolled back, with when
and what evidence), so a quality engineer can see which model judged which board and return to an
earlier one. `aoi serve` serves the active version when no `--model` is given; the bundled default
serves while nothing is promoted. Writes replace the file atomically; one writer at a time (the CLI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aoi.detection.bundle import FLOAT_MODEL, ModelBundle
from aoi.schema import InspectionInputError

REGISTRY_FILE = "registry.json"
REGISTRY_FORMAT = 1


class RegistryError(InspectionInputError):
    """An unknown version, a version already registered, nothing to roll back to, or a damaged registry."""


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    folder: str  # relative to the registry root
    added_at: str
    evidence: dict[str, Any]


def folder_name(version: str) -> str:
    """A file-system-safe folder for a version name."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", version).strip("._") or "model"
    return name[:120]


class ModelRegistry:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def in_data_dir(cls, data_dir: Path | str) -> ModelRegistry:
        """The registry of a line's data folder: `<data dir>/models`."""
        return cls(Path(data_dir) / "models")

    @property
    def path(self) -> Path:
        return self.root / REGISTRY_FILE

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"format": REGISTRY_FORMAT, "active": None, "served": [], "models": {}, "history": []}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"model registry {self.path} cannot be read: {exc}") from exc
        if (
            not isinstance(data, dict)
            or data.get("format") != REGISTRY_FORMAT
            or not isinstance(data.get("models"), dict)
        ):
            raise RegistryError(f"model registry {self.path} is not a registry this version understands")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".registry-", suffix=".json", dir=self.root)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _event(data: dict[str, Any], event: str, version: str, **details: Any) -> None:
        data["history"].append(
            {"at": datetime.now(UTC).isoformat(timespec="seconds"), "event": event, "version": version, **details}
        )

    def models(self) -> list[RegisteredModel]:
        data = self._read()
        return [
            RegisteredModel(version, str(entry["folder"]), str(entry["added_at"]), dict(entry.get("evidence", {})))
            for version, entry in data["models"].items()
        ]

    def history(self) -> list[dict[str, Any]]:
        return list(self._read()["history"])

    def active_version(self) -> str | None:
        active = self._read().get("active")
        return str(active) if active else None

    def bundle(self, version: str) -> ModelBundle:
        data = self._read()
        entry = data["models"].get(version)
        if entry is None:
            known = ", ".join(data["models"]) or "none"
            raise RegistryError(f"no model {version!r} in {self.root} (registered: {known})")
        return ModelBundle.load(self.root / entry["folder"])

    def active_bundle(self) -> ModelBundle | None:
        """The promoted bundle, or None while nothing is promoted (the caller serves its default)."""
        version = self.active_version()
        return None if version is None else self.bundle(version)

    def add(self, bundle: ModelBundle, evidence: dict[str, Any] | None = None) -> RegisteredModel:
        """Copy `bundle` into the registry under its version; not yet served."""
        data = self._read()
        version = bundle.meta.version
        if version in data["models"]:
            raise RegistryError(f"model {version!r} is already registered")
        folder = folder_name(version)
        taken = {entry["folder"] for entry in data["models"].values()}
        suffix = 1
        while folder in taken or (self.root / folder).exists():
            suffix += 1
            folder = f"{folder_name(version)}-{suffix}"
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".adding-", dir=self.root))
        try:
            for name in dict.fromkeys(("bundle.json", FLOAT_MODEL, bundle.meta.inference_model, "MODEL_CARD.md")):
                if (bundle.path / name).is_file():
                    shutil.copy2(bundle.path / name, staging / name)
            ModelBundle.load(staging)  # refuse a bundle that would not load
            staging.rename(self.root / folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        added = datetime.now(UTC).isoformat(timespec="seconds")
        data["models"][version] = {"folder": folder, "added_at": added, "evidence": evidence or {}}
        self._event(data, "added", version)
        self._write(data)
        return RegisteredModel(version, folder, added, evidence or {})

    def promote(self, version: str, reason: str = "") -> None:
        data = self._read()
        if version not in data["models"]:
            known = ", ".join(data["models"]) or "none"
            raise RegistryError(f"no model {version!r} to promote (registered: {known})")
        ModelBundle.load(self.root / data["models"][version]["folder"])  # refuse one that would not load
        previous = data.get("active")
        data["active"] = version
        data.setdefault("served", []).append(version)
        self._event(data, "promoted", version, previous=previous, reason=reason)
        self._write(data)

    def rollback(self) -> str | None:
        """Serve again the version served before the current one; None: back to the bundled default."""
        data = self._read()
        current = data.get("active")
        served: list[str] = [v for v in data.get("served", []) if v in data["models"]]
        if current is None or not served:
            raise RegistryError("nothing is promoted: the bundled default model already serves")
        served.pop()
        data["served"] = served
        data["active"] = served[-1] if served else None
        self._event(data, "rolled_back", current, now_active=data["active"])
        self._write(data)
        return data["active"]


__all__ = ["ModelRegistry", "RegisteredModel", "RegistryError", "REGISTRY_FILE"]
