"""Product (recipe) repository."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aoi.storage.models import ProductRow
from aoi.storage.records import Product, product_from_row


class ProductRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: ProductRow) -> Product:
        self.session.add(row)
        self.session.flush()
        return product_from_row(row)

    def get(self, id_or_name: str) -> Product | None:
        """Look a product up by id, or else by its name ignoring case (names are unique that way; a
        hot-folder subfolder or an upload's `product` may spell it in either case)."""
        row = self.session.get(ProductRow, id_or_name) or self.session.scalar(
            select(ProductRow).where(func.lower(ProductRow.name) == id_or_name.lower()).limit(1)
        )
        return None if row is None else product_from_row(row)

    def by_id(self, product_id: str) -> Product | None:
        row = self.session.get(ProductRow, product_id)
        return None if row is None else product_from_row(row)

    def name_taken(self, name: str) -> str | None:
        """The stored name equal to `name` ignoring case, if any."""
        return self.session.scalar(select(ProductRow.name).where(func.lower(ProductRow.name) == name.lower()).limit(1))

    def all(self) -> list[Product]:
        rows = self.session.scalars(select(ProductRow).order_by(ProductRow.created_at, ProductRow.name))
        return [product_from_row(r) for r in rows]
