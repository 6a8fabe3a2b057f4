"""Storing one inspection atomically: image files first, then one transaction; files removed on rollback.

`InspectionRecorder` is used by the HTTP API and, through `DatabaseSink`, by the capture pipeline
(`DatabaseSink` satisfies `aoi.pipeline.protocols.ResultSink` structurally).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from aoi.data.images import ImageError, read_image
from aoi.pipeline.template_origin import InlineTemplate, ProductRef, ProductTemplate, TemplateFile, TemplateOrigin
from aoi.schema import InspectionFailure, InspectionResult
from aoi.storage.database import Database, is_unavailable
from aoi.storage.idempotency import IdempotencyClaim, IdempotencyKeyTaken, add_claim, claim_exists
from aoi.storage.images import ImageStore
from aoi.storage.inspections import InspectionRepository
from aoi.storage.models import FailureRow, InspectionRow, utc_now
from aoi.storage.products import ProductRepository
from aoi.storage.records import Product, StoredInspection, inspection_to_row, utc_now_aware

if TYPE_CHECKING:
    from aoi.pipeline.protocols import UploadExtras

log = logging.getLogger(__name__)


def new_id() -> str:
    return uuid.uuid4().hex


class InspectionRecorder:
    def __init__(self, db: Database, images: ImageStore) -> None:
        self.db = db
        self.images = images

    def record(
        self,
        result: InspectionResult,
        test_image: np.ndarray,
        *,
        product: Product | None = None,
        template_image: np.ndarray | None = None,
        source: str = "upload",
        source_key: str | None = None,
        template_from_product: bool = True,
        test_received: bytes | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> StoredInspection:
        """Store `result` with its images. With a `source_key` already stored, return the first record.

        The template path recorded is the uploaded `template_image` (saved now) or, when
        `template_from_product`, the product's recipe template. `test_received`: the tested image's
        bytes as received (a PNG or JPEG is stored as it is, without re-encoding). `claim`: the request's
        idempotency key, stored in the same transaction; IdempotencyKeyTaken (nothing stored) when a
        concurrent request with that key committed first.
        """
        inspection_id = new_id()
        defect_ids = [new_id() for _ in result.defects]
        written: list[str] = []
        try:
            test_path = self.images.save_inspection_image(inspection_id, test_image, "test", test_received)
            written.append(test_path)
            template_path = product.template_path if product is not None and template_from_product else None
            if template_image is not None:
                template_path = self.images.save_inspection_image(inspection_id, template_image, "template")
                written.append(template_path)
            row = inspection_to_row(
                result,
                inspection_id,
                defect_ids,
                product_id=product.id if product is not None else None,
                source=source,
                source_key=source_key,
                test_image_path=test_path,
                template_path=template_path,
            )
            with self.db.transaction() as session:
                InspectionRepository(session).add(row)
                if claim is not None:
                    add_claim(session, claim, "inspection", inspection_id)
        except IntegrityError:
            for path in written:
                self.images.delete(path)
            if source_key is not None:
                existing = self._existing(source_key)
                if existing is not None:
                    return existing
            if claim is not None:
                with self.db.session() as session:
                    if claim_exists(session, claim):
                        raise IdempotencyKeyTaken(claim) from None
            raise
        except DBAPIError as exc:
            # A lost connection may have lost the commit or only its answer: ask again. When the database
            # cannot say, keep the files: a row without its image is worse than a file without a row,
            # which the orphan sweep removes at the next start.
            landed = self.db.row_exists(InspectionRow, inspection_id) if is_unavailable(exc) else False
            if landed is None:
                log.warning(
                    "database lost while storing inspection %s (%s); its image files stay until the orphan sweep",
                    inspection_id, type(exc.orig).__name__,
                )  # fmt: skip
                raise
            if not landed:
                for path in written:
                    self.images.delete(path)
                raise
            log.warning("inspection %s was committed although the connection was lost at commit", inspection_id)
        except BaseException:
            for path in written:
                self.images.delete(path)
            raise
        defects = tuple(replace(d, id=did) for d, did in zip(result.defects, defect_ids, strict=True))
        stored_result = replace(result, defects=defects, product=product.name if product else result.product)
        return StoredInspection(
            id=inspection_id,
            result=stored_result,
            created_at=row.created_at if row.created_at is not None else utc_now_aware(),
            source=source,
            product_id=product.id if product is not None else None,
            product_name=product.name if product is not None else None,
            test_image_path=test_path,
            template_path=template_path,
        )

    def _existing(self, source_key: str) -> StoredInspection | None:
        with self.db.session() as session:
            repo = InspectionRepository(session)
            existing_id = repo.id_for_source_key(source_key)
            return repo.get(existing_id) if existing_id is not None else None

    def record_failure(self, failure: InspectionFailure, source_key: str | None) -> str:
        """Record a per-image failure, one row per `source_key`: a key that fails again (moved back
        into the inbox before its cause was fixed) updates that row with the latest error."""
        failure_id = new_id()
        try:
            with self.db.transaction() as session:
                session.add(
                    FailureRow(
                        id=failure_id,
                        source_key=source_key,
                        image_id=failure.image_id,
                        error=failure.error,
                        message=failure.message,
                    )
                )
        except IntegrityError:
            with self.db.transaction() as session:
                row = session.scalar(select(FailureRow).where(FailureRow.source_key == source_key))
                if row is None:
                    raise
                row.image_id, row.error, row.message = failure.image_id, failure.error, failure.message
                row.created_at = utc_now()
                return row.id
        return failure_id

    def already_done(self, source_key: str) -> bool:
        """True when a result is stored for `source_key`. A recorded failure is not done: the file
        may come back once its cause is fixed, and must then be inspected."""
        with self.db.session() as session:
            return session.scalar(select(InspectionRow.id).where(InspectionRow.source_key == source_key)) is not None


class DatabaseSink:
    """The pipeline's `ResultSink` over the results database. Every stored board keeps the template it
    was inspected against (`TemplateOrigin`), so that the learning-loop export (`aoi.storage.export`) can
    use it:

    - `ProductTemplate`: the recipe's template was used; it is referenced (the product's template file),
      not copied.
    - `TemplateFile` (a hot-folder `_temp` file): the file is copied into the image store with the
      inspection.
    - `InlineTemplate`: the template pixels the capture brought itself (the demo line, a camera or an
      upload with its own template): saved with the inspection.

    The origin's `product` is linked (loaded by its id); with a file or pixels it only labels the board:
    its recipe template is not claimed as the one used.
    `upload` (an HTTP upload through the line): stored as the API always stored uploads, with the product
    record the request resolved, its idempotency claim (IdempotencyKeyTaken when a concurrent request with
    the key committed first), the bytes as received and no source key; the stored record is returned.
    """

    def __init__(self, recorder: InspectionRecorder, source: str = "pipeline") -> None:
        self.recorder = recorder
        self.source = source

    def store(
        self,
        result: InspectionResult,
        test_image: np.ndarray,
        template: TemplateOrigin,
        source_key: str,
        *,
        upload: UploadExtras | None = None,
    ) -> str | StoredInspection:
        if upload is not None:
            return self.recorder.record(
                result,
                test_image,
                product=upload.product,
                template_image=template.image if isinstance(template, InlineTemplate) else None,
                source=self.source_of(source_key, upload),
                test_received=upload.test_received,
                claim=upload.claim,
            )
        match template:
            case ProductTemplate():
                template_image = None
            case TemplateFile(path=path):
                template_image = _read_template_file(path)
            case InlineTemplate(image=image):
                template_image = image
        stored = self.recorder.record(
            result,
            test_image,
            product=self._product(template.product),
            template_image=template_image,
            source=self.source_of(source_key),
            source_key=source_key,
            template_from_product=isinstance(template, ProductTemplate),
        )
        return stored.id

    def already_done(self, source_key: str) -> bool:
        return self.recorder.already_done(source_key)

    def source_of(self, source_key: str, upload: UploadExtras | None = None) -> str:
        """The source a board is stored (and counted) under: an upload's own; else the kind its key names
        before the colon (`hotfolder:...`, `video:...`, `demo:...`); else this sink's."""
        if upload is not None:
            return upload.source
        head, sep, _ = source_key.partition(":")
        return head[:32] if sep and head.isidentifier() else self.source

    def store_failure(self, failure: InspectionFailure, source_key: str) -> str | None:
        return self.recorder.record_failure(failure, source_key)

    def _product(self, ref: ProductRef | None) -> Product | None:
        """The product record the line resolved (None: deleted since, or no product)."""
        if ref is None:
            return None
        with self.recorder.db.session() as session:
            return ProductRepository(session).by_id(ref.id)


def _read_template_file(path: Path) -> np.ndarray | None:
    """A template file's pixels to copy; None (the board is stored without it) when it is gone or unreadable."""
    try:
        return read_image(path)
    except ImageError as exc:
        log.warning("template %s could not be read for storage: %s", path, exc)
        return None
