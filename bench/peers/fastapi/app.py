# bench/peers/fastapi/app.py: the FastAPI peer of libbackend's benchmark
# (bench/peers.sh), the same four endpoints as the C server, written the way
# FastAPI's documentation recommends.
#
# Started (Debian's packages, which load only in /usr/bin/python3):
#   cd bench/peers/fastapi && /usr/bin/python3 -m uvicorn app:app \
#       --host 127.0.0.1 --port $PORT --workers 2 --no-access-log --log-level warning
#
# Environment:
#   PORT               the port (given to uvicorn on its command line)
#   PEER_PG_DSN        libpq conninfo, e.g. "host=/tmp/sock port=5432 user=u dbname=d"
#   PEER_MEMCACHED     memcached as host:port
#   PEER_CACHE_PREFIX  a prefix for every memcached key (e.g. "peers-fastapi:")
#   PEER_JWT_KEY_FILE  a file whose bytes, all of them, are the HS256 secret
#   PEER_JWT_ISS       the issuer a token must carry
#   PEER_JWT_AUD       the audience a token must carry
#
# Choices: every route is `async def`. PostgreSQL is awaited through psycopg
# 3's AsyncConnectionPool (psycopg_pool; 4 connections per worker process,
# in autocommit: one round trip a query, as node-postgres and libpq do).
# memcached has no async client in Debian, so pymemcache's PooledClient, a
# blocking library, is called through FastAPI's run_in_threadpool, off the
# event loop. (Plain `def` routes on the sync ConnectionPool, run in FastAPI's
# thread pool, were measured too: the list answered about a quarter fewer
# requests, with tails past 1 s.) The pool and the memcached client are made
# per worker process in its startup event (uvicorn spawns its workers).
# Answers are encoded through Pydantic models (response_model), FastAPI's
# documented way; a product read from PostgreSQL is encoded once
# (jsonable_encoder and JSONResponse, as FastAPI encodes any answer), and
# those bytes are cached and answered as they are on a hit.
# One workaround, for a uvicorn bug that costs ~40 ms per keep-alive request
# with --workers N: TCP_NODELAY is set on accepted connections (_set_nodelay).
# Packages (Debian 12): python3-fastapi 0.92, uvicorn 0.17.6, python3-jwt
# (PyJWT 2.6), python3-psycopg 3.1, python3-psycopg-pool 3.1,
# python3-pymemcache 3.5 (python3-psycopg-pool is not pulled in by
# python3-psycopg: install it by name).
#
# SPDX-License-Identifier: MIT

import asyncio.base_events
import math
import os
import re
import socket
from datetime import datetime
from typing import Any, Dict, FrozenSet, List, Optional

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from pymemcache.client.base import PooledClient
from pymemcache.exceptions import MemcacheError

# uvicorn 0.17.6 with --workers N binds the listening socket itself, without
# proto=IPPROTO_TCP, and asyncio sets TCP_NODELAY only on accepted sockets
# whose proto says IPPROTO_TCP: Nagle's algorithm then holds each answer's
# body (written after its headers) until the client's delayed ACK, ~40 ms per
# request on a keep-alive connection (uvicorn issue 3149; --workers 1 is not
# affected). This gives those connections the TCP_NODELAY that asyncio gives
# any other TCP connection. It runs in each worker, before it accepts.
def _set_nodelay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


asyncio.base_events._set_nodelay = _set_nodelay

PG_DSN = os.environ["PEER_PG_DSN"]
MEMCACHED = os.environ["PEER_MEMCACHED"]
CACHE_PREFIX = os.environ.get("PEER_CACHE_PREFIX", "peers-fastapi:")
with open(os.environ["PEER_JWT_KEY_FILE"], "rb") as key_file:
    JWT_KEY = key_file.read()
JWT_ISS = os.environ["PEER_JWT_ISS"]
JWT_AUD = os.environ["PEER_JWT_AUD"]

PG_POOL_SIZE = 4
CACHE_TTL = 60  # seconds

PRODUCT_SQL = (
    "SELECT id, sku, name, description, price, currency, stock, created_at, updated_at"
    " FROM backendd.products WHERE id = %s"
)
LIST_SQL = (
    "SELECT id, sku, name, description, price, currency, stock, created_at, updated_at,"
    " count(*) OVER () AS total"
    " FROM backendd.products ORDER BY id LIMIT %s OFFSET %s"
)
COUNT_SQL = "SELECT count(*) AS total FROM backendd.products"
PRODUCT_ID = re.compile(r"[0-9]{1,18}")

# RBAC policy: role -> permissions, with inheritance; "*" grants everything.
POLICY: Dict[str, Dict[str, List[str]]] = {
    "customer": {"permissions": ["orders:create", "orders:read:own", "profile:read"]},
    "editor": {"inherits": ["customer"], "permissions": ["products:write"]},
    "admin": {"permissions": ["*"]},
}


def _effective(role: str, seen: FrozenSet[str] = frozenset()) -> FrozenSet[str]:
    entry = POLICY.get(role)
    if entry is None or role in seen:
        return frozenset()
    perms = set(entry.get("permissions", []))
    for parent in entry.get("inherits", []):
        perms |= _effective(parent, seen | {role})
    return frozenset(perms)


PERMISSIONS: Dict[str, FrozenSet[str]] = {role: _effective(role) for role in POLICY}


class Product(BaseModel):
    id: int
    sku: str
    name: str
    description: str
    price: int
    currency: str
    stock: int
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    items: List[Product]
    total: int
    page: int
    per_page: int
    total_pages: int


class Me(BaseModel):
    sub: Optional[str]
    roles: List[str]


class Message(BaseModel):
    message: str


app = FastAPI(title="libbackend bench peer (FastAPI)")
pool: Optional[AsyncConnectionPool] = None
cache: Optional[PooledClient] = None


@app.on_event("startup")
async def open_clients() -> None:
    global pool, cache
    pool = AsyncConnectionPool(
        PG_DSN,
        min_size=PG_POOL_SIZE,
        max_size=PG_POOL_SIZE,
        # Reads only, each a statement of its own: autocommit spares the
        # BEGIN and COMMIT round trips psycopg adds by default.
        kwargs={"row_factory": dict_row, "autocommit": True},
    )
    await pool.wait(timeout=30)
    host, _, port = MEMCACHED.rpartition(":")
    cache = PooledClient(
        (host, int(port)),
        key_prefix=CACHE_PREFIX.encode(),
        connect_timeout=1,
        timeout=1,
        no_delay=True,
        ignore_exc=True,  # a memcached failure reads as a miss: PostgreSQL answers
    )


@app.on_event("shutdown")
async def close_clients() -> None:
    if cache is not None:
        cache.close()
    if pool is not None:
        await pool.close()


# --- authentication and authorisation -------------------------------------

bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_claims(
    credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
) -> Dict[str, Any]:
    if credentials is None:
        raise _unauthorized("Not authenticated")
    try:
        return jwt.decode(
            credentials.credentials,
            JWT_KEY,
            algorithms=["HS256"],
            audience=JWT_AUD,
            issuer=JWT_ISS,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.InvalidTokenError:
        raise _unauthorized("Invalid token")


def require_permission(permission: str):
    async def check(claims: Dict[str, Any] = Depends(current_claims)) -> Dict[str, Any]:
        roles = claims.get("roles")
        if isinstance(roles, list):
            for role in roles:
                granted = PERMISSIONS.get(role, frozenset()) if isinstance(role, str) else frozenset()
                if "*" in granted or permission in granted:
                    return claims
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Forbidden")

    return check


# --- routes -----------------------------------------------------------------


@app.get("/json", response_model=Message)
async def hello() -> Dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/api/v1/me", response_model=Me)
async def me(claims: Dict[str, Any] = Depends(require_permission("profile:read"))) -> Dict[str, Any]:
    return {"sub": claims.get("sub"), "roles": claims["roles"]}


@app.get(
    "/api/v1/products/{product_id}",
    response_model=Product,
    responses={404: {"description": "No such product"}},
)
async def get_product(product_id: str) -> Response:
    if not PRODUCT_ID.fullmatch(product_id):
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="no such product")
    key = "product:" + product_id
    body = await run_in_threadpool(cache.get, key)
    if body is None:
        async with pool.connection() as conn:
            cursor = await conn.execute(PRODUCT_SQL, (int(product_id),))
            row = await cursor.fetchone()
        if row is None:
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="no such product")
        # Encoded as FastAPI encodes any answer; these bytes are what is cached.
        response = JSONResponse(content=jsonable_encoder(Product(**row)))
        try:
            await run_in_threadpool(cache.set, key, response.body, expire=CACHE_TTL)
        except (MemcacheError, OSError):
            pass  # the cache only saves work: the answer stands without it
        return response
    return Response(content=body, media_type="application/json")


@app.get("/api/v1/products", response_model=ProductPage)
async def list_products(
    page: int = Query(1, ge=1),
    per_page: int = Query(20, ge=1, le=100),
) -> Dict[str, Any]:
    async with pool.connection() as conn:
        cursor = await conn.execute(LIST_SQL, (per_page, (page - 1) * per_page))
        rows = await cursor.fetchall()
        if rows:
            total = rows[0]["total"]
        elif page > 1:
            cursor = await conn.execute(COUNT_SQL)
            total = (await cursor.fetchone())["total"]
        else:
            total = 0
    for row in rows:
        del row["total"]
    return {
        "items": rows,
        "total": total,
        "page": page,
        "per_page": per_page,
        "total_pages": math.ceil(total / per_page),
    }
