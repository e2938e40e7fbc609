"""Idempotent demo data: a merchant, a room, products with stock, staff logins and a stream key."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce import accounts
from livecommerce.auth import hash_password, hash_stream_key
from livecommerce.db.models import Merchant, Product, Role, Room, Sku, StreamKey, User
from livecommerce.urls import room_urls

MERCHANT_SLUG = "demo"
ROOM_SLUG = "demo-live"
CATALOG = [
    (
        "Highland green tea, 250 g",
        "Spring harvest from the county co-op.",
        [("TEA-250", "250 g tin", 1890, 200)],
    ),
    (
        "Hand-woven bamboo basket",
        "Made by the village workshop.",
        [("BASKET-S", "Small", 2400, 80), ("BASKET-L", "Large", 3600, 40)],
    ),
    ("Wild mountain honey, 500 g", "Raw, unfiltered.", [("HONEY-500", "500 g jar", 2650, 120)]),
]
STAFF = [
    ("anchor", Role.ANCHOR, "Anchor Li"),
    ("operator", Role.OPERATOR, "Operator Wang"),
    ("moderator", Role.MODERATOR, "Moderator Chen"),
]


async def _merchant(session: AsyncSession) -> Merchant:
    merchant = await session.scalar(select(Merchant).where(Merchant.slug == MERCHANT_SLUG))
    return merchant or await accounts.create_merchant(
        session, name="Demo County Co-op", slug=MERCHANT_SLUG, currency="USD"
    )


async def _room(session: AsyncSession, merchant: Merchant) -> Room:
    room = await session.scalar(select(Room).where(Room.slug == ROOM_SLUG))
    return room or await accounts.create_room(
        session, merchant_id=merchant.id, title="Spring harvest live", slug=ROOM_SLUG
    )


async def _catalog(session: AsyncSession, merchant: Merchant) -> list[dict[str, Any]]:
    products = []
    for name, description, variants in CATALOG:
        product = await session.scalar(
            select(Product).where(Product.merchant_id == merchant.id, Product.name == name)
        )
        if product is None:
            product = Product(merchant_id=merchant.id, name=name, description=description)
            session.add(product)
            await session.flush()
        skus = []
        for code, variant, price, stock in variants:
            sku = await session.scalar(select(Sku).where(Sku.merchant_id == merchant.id, Sku.code == code))
            if sku is None:
                sku = Sku(
                    product_id=product.id,
                    merchant_id=merchant.id,
                    code=code,
                    name=variant,
                    price_minor=price,
                    currency=merchant.currency,
                    on_hand=stock,
                )
                session.add(sku)
                await session.flush()
            skus.append(
                {
                    "id": sku.id,
                    "code": sku.code,
                    "name": sku.name,
                    "price_minor": sku.price_minor,
                    "currency": sku.currency,
                }
            )
        products.append({"id": product.id, "name": product.name, "skus": skus})
    return products


async def _staff(session: AsyncSession, merchant: Merchant, previous: dict[str, Any]) -> dict[str, Any]:
    logins = {}
    for name, role, display in STAFF:
        login = f"{name}@demo.local"
        password = previous.get(name, {}).get("password") or secrets.token_urlsafe(9)
        user = await session.scalar(select(User).where(User.login == login))
        if user is None:
            await accounts.create_user(
                session,
                login=login,
                password=password,
                role=role,
                display_name=display,
                merchant_id=merchant.id,
            )
        elif not previous.get(name):
            user.password_hash = hash_password(password)
        logins[name] = {"login": login, "password": password, "role": role.value}
    return logins


async def _stream_key(session: AsyncSession, room: Room, previous: dict[str, Any]) -> str:
    key = previous.get("stream_key")
    if key:
        existing = await session.scalar(select(StreamKey).where(StreamKey.key_hash == hash_stream_key(key)))
        if existing is not None and existing.revoked_at is None:
            return key
    _, key = await accounts.create_stream_key(session, room_id=room.id, label="demo")
    return key


async def seed_demo(session: AsyncSession, *, base_url: str, data_dir: Path) -> dict[str, Any]:
    """Create what is missing, reuse what exists, and write `<data_dir>/demo.json`."""
    path = data_dir / "demo.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    merchant = await _merchant(session)
    room = await _room(session, merchant)
    demo = {
        "merchant_id": merchant.id,
        "room_id": room.id,
        "room_slug": room.slug,
        "stream_key": await _stream_key(session, room, previous),
        **room_urls(base_url, room.id),
        "logins": await _staff(session, merchant, previous.get("logins", {})),
        "products": await _catalog(session, merchant),
    }
    path.write_text(json.dumps(demo, indent=2))
    path.chmod(0o600)
    return demo
