"""Inbound Bot Framework JWTs (design.md §5), against a fake identity platform on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from handlers.teams.auth import KeySet, KeysUnavailable, TeamsAuthError, TokenValidator
from tests.support.fake_microsoft import APP_ID, APP_PASSWORD, FakeIdentity, recorded_activity, rsa_key

SERVICE_URL = "https://smba.trafficmanager.net/amer/"


@pytest.fixture
async def validator(identity: FakeIdentity) -> AsyncIterator[TokenValidator]:
    async with httpx.AsyncClient() as http:
        yield TokenValidator(KeySet(http, identity.metadata_url, min_refetch=0), app_id=APP_ID)


def activity() -> dict:
    return recorded_activity("20191020020553704-request", service_url=SERVICE_URL)


async def test_a_token_signed_by_a_published_key_is_accepted(identity: FakeIdentity, validator) -> None:
    claims = await validator.validate(f"Bearer {identity.mint(service_url=SERVICE_URL)}", activity())
    assert claims["aud"] == APP_ID
    # Keys are cached: a second request fetches nothing.
    await validator.validate(f"Bearer {identity.mint(service_url=SERVICE_URL)}", activity())
    assert [c.route for c in identity.calls()] == ["metadata", "keys"]


def hs256_with_password() -> str:
    claims = {
        "iss": "https://api.botframework.com",
        "aud": APP_ID,
        "exp": 4102444800,
        "serviceurl": SERVICE_URL,
    }
    return jwt.encode(claims, APP_PASSWORD, algorithm="HS256", headers={"kid": "key-1"})


def unsigned() -> str:
    claims = {
        "iss": "https://api.botframework.com",
        "aud": APP_ID,
        "exp": 4102444800,
        "serviceurl": SERVICE_URL,
    }
    return jwt.encode(claims, None, algorithm="none", headers={"kid": "key-1"})


BAD_TOKENS = {
    "no token": lambda fake: None,
    "not bearer": lambda fake: "Basic " + fake.mint(service_url=SERVICE_URL),
    "garbage": lambda fake: "Bearer not.a.jwt",
    "wrong audience": lambda fake: "Bearer " + fake.mint(service_url=SERVICE_URL, aud="someone-else"),
    "wrong issuer": lambda fake: (
        "Bearer " + fake.mint(service_url=SERVICE_URL, iss="https://sts.windows.net/x/")
    ),
    "expired": lambda fake: "Bearer " + fake.mint(service_url=SERVICE_URL, lifetime=-301),
    "no expiry": lambda fake: "Bearer " + fake.mint(service_url=SERVICE_URL, exp=None),
    "serviceurl mismatch": lambda fake: "Bearer " + fake.mint(service_url="https://evil.example/"),
    "no serviceurl": lambda fake: "Bearer " + fake.mint(service_url=SERVICE_URL, serviceurl=None),
    "unknown key": lambda fake: "Bearer " + fake.mint(service_url=SERVICE_URL, kid="key-unpublished"),
    "alg none": lambda fake: "Bearer " + unsigned(),
    "HS256 with the app password": lambda fake: "Bearer " + hs256_with_password(),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_are_refused_with_a_reason(case: str, identity: FakeIdentity, validator) -> None:
    with pytest.raises(TeamsAuthError) as refused:
        await validator.validate(BAD_TOKENS[case](identity), activity())
    assert refused.value.status == 401
    assert str(refused.value)


async def test_the_serviceurl_may_differ_only_by_its_trailing_slash(
    identity: FakeIdentity, validator
) -> None:
    token = identity.mint(service_url=SERVICE_URL.rstrip("/"))
    assert await validator.validate(f"Bearer {token}", activity())
    with pytest.raises(TeamsAuthError):
        await validator.validate(f"Bearer {identity.mint(service_url=SERVICE_URL + 'x/')}", activity())


async def test_expiry_allows_five_minutes_of_skew(identity: FakeIdentity, validator) -> None:
    token = identity.mint(service_url=SERVICE_URL, lifetime=-240)
    assert await validator.validate(f"Bearer {token}", activity())


async def test_an_unknown_kid_refetches_the_keys_so_rotation_needs_no_restart(
    identity: FakeIdentity, validator
) -> None:
    await validator.validate(f"Bearer {identity.mint(service_url=SERVICE_URL)}", activity())
    identity.publish("key-1", "key-2")
    rsa_key("key-2")
    await validator.validate(f"Bearer {identity.mint(service_url=SERVICE_URL, kid='key-2')}", activity())
    assert [c.route for c in identity.calls()] == ["metadata", "keys", "metadata", "keys"]


async def test_unknown_kids_do_not_hammer_the_identity_platform(identity: FakeIdentity) -> None:
    async with httpx.AsyncClient() as http:
        validator = TokenValidator(KeySet(http, identity.metadata_url, min_refetch=60), app_id=APP_ID)
        for _ in range(3):
            with pytest.raises(TeamsAuthError):
                token = identity.mint(service_url=SERVICE_URL, kid="key-made-up")
                await validator.validate(f"Bearer {token}", activity())
    assert [c.route for c in identity.calls()] == ["metadata", "keys"]


async def test_a_key_not_endorsed_for_the_channel_is_refused(identity: FakeIdentity, validator) -> None:
    with pytest.raises(TeamsAuthError, match="endorsed"):
        await validator.validate(
            f"Bearer {identity.mint(service_url=SERVICE_URL)}", {**activity(), "channelId": "skype"}
        )


async def test_an_unreachable_identity_platform_is_a_503_not_a_401() -> None:
    async with httpx.AsyncClient() as http:
        validator = TokenValidator(KeySet(http, "http://127.0.0.1:9/openid"), app_id=APP_ID)
        with FakeIdentity.running() as fake:
            token = fake.mint(service_url=SERVICE_URL)
        for _ in range(2):  # the second, within the refetch interval, is not a "forged key" 401
            with pytest.raises(KeysUnavailable) as refused:
                await validator.validate(f"Bearer {token}", activity())
            assert refused.value.status == 503
