"""The schema itself guards the invariants: stock never negative, money adds up, staff belong to a merchant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from livecommerce import accounts
from livecommerce.db.models import FlashSale, Order, Product, Role, Sku, User


@pytest.fixture
async def sessions(database_url):
    engine = create_async_engine(database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def _catalog(session: AsyncSession) -> tuple[int, int, int, int]:
    merchant = await accounts.create_merchant(session, name="M", slug="m")
    room = await accounts.create_room(session, merchant_id=merchant.id, title="R")
    product = Product(merchant_id=merchant.id, name="P")
    session.add(product)
    await session.flush()
    sku = Sku(
        product_id=product.id,
        merchant_id=merchant.id,
        code="A",
        name="A",
        price_minor=100,
        currency="USD",
        on_hand=5,
    )
    session.add(sku)
    buyer = await accounts.create_guest(session, "Buyer")
    await session.flush()
    return merchant.id, room.id, sku.id, buyer.id


async def _violates(sessions, constraint: str, build) -> None:
    async with sessions() as session:
        ids = await _catalog(session)
        await session.commit()
    with pytest.raises(IntegrityError) as error:
        async with sessions.begin() as session:
            await build(session, *ids)
    assert constraint in str(error.value)


async def test_reserved_stock_cannot_exceed_on_hand(sessions):
    async def build(session, merchant_id, room_id, sku_id, buyer_id):
        sku = await session.get(Sku, sku_id)
        sku.reserved = 6

    await _violates(sessions, "ck_skus_reserved_within_on_hand", build)


async def test_sale_cannot_go_below_zero_available(sessions):
    async def build(session, merchant_id, room_id, sku_id, buyer_id):
        now = datetime.now(UTC)
        session.add(
            FlashSale(
                room_id=room_id,
                merchant_id=merchant_id,
                sku_id=sku_id,
                sale_price_minor=50,
                currency="USD",
                allocated=3,
                available=-1,
                starts_at=now,
                ends_at=now + timedelta(minutes=5),
            )
        )

    await _violates(sessions, "ck_flash_sales_available_within_allocated", build)


async def test_order_amount_must_equal_quantity_times_price(sessions):
    async def build(session, merchant_id, room_id, sku_id, buyer_id):
        session.add(
            Order(
                merchant_id=merchant_id,
                room_id=room_id,
                sku_id=sku_id,
                user_id=buyer_id,
                quantity=2,
                unit_price_minor=100,
                amount_minor=150,
                currency="USD",
                idempotency_key="k",
            )
        )

    await _violates(sessions, "ck_orders_amount_matches", build)


async def test_idempotency_key_is_unique_per_buyer(sessions):
    async def build(session, merchant_id, room_id, sku_id, buyer_id):
        for _ in range(2):
            session.add(
                Order(
                    merchant_id=merchant_id,
                    room_id=room_id,
                    sku_id=sku_id,
                    user_id=buyer_id,
                    quantity=1,
                    unit_price_minor=100,
                    amount_minor=100,
                    currency="USD",
                    idempotency_key="same",
                )
            )
            await session.flush()

    await _violates(sessions, "uq_orders_user_id_idempotency_key", build)


async def test_staff_account_needs_a_merchant(sessions):
    async def build(session, merchant_id, room_id, sku_id, buyer_id):
        session.add(User(login="op@x", display_name="Op", role=Role.OPERATOR, password_hash="x"))

    await _violates(sessions, "ck_users_staff_has_merchant", build)


async def test_accounts_layer_refuses_bad_input_before_the_database(sessions):
    from livecommerce.errors import AppError

    async with sessions() as session:
        for call, code in [
            (accounts.create_merchant(session, name="x", slug="Bad Slug!"), "invalid"),
            (accounts.create_merchant(session, name="x", slug="ok", currency="usd"), "invalid"),
            (accounts.create_guest(session, " \t "), "invalid"),
            (accounts.create_guest(session, "x" * 40), "invalid"),
            (
                accounts.create_user(
                    session, login="a@b", password="short", role=Role.VIEWER, display_name="A"
                ),
                "invalid",
            ),
            (
                accounts.create_user(
                    session, login="a@b", password="long enough", role=Role.ANCHOR, display_name="A"
                ),
                "invalid",
            ),
        ]:
            with pytest.raises(AppError) as error:
                await call
            assert error.value.code == code
