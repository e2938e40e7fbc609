"""Product cards as viewers see them: name, image, prices and stock left per SKU, and the running
flash sale of each SKU (sale price, units left, state and countdown) when there is one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.commerce.sales import open_sales_of_product
from livecommerce.db.models import Product, Sku


async def product_card(session: AsyncSession, product_id: int) -> dict[str, Any] | None:
    """The card for a pinned product, or None if it does not exist."""
    product = await session.get(Product, product_id)
    if product is None:
        return None
    skus = (await session.scalars(select(Sku).where(Sku.product_id == product_id).order_by(Sku.id))).all()
    sales = await open_sales_of_product(session, product_id)
    return {
        "product_id": product.id,
        "merchant_id": product.merchant_id,
        "name": product.name,
        "description": product.description,
        "image_url": product.image_url,
        "skus": [
            {
                "sku_id": sku.id,
                "code": sku.code,
                "name": sku.name,
                "price_minor": sku.price_minor,
                "currency": sku.currency,
                "available": sku.on_hand - sku.reserved,
                "sale": sales.get(sku.id),
            }
            for sku in skus
        ],
    }
