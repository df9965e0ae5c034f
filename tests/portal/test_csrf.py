"""Whose site a form post comes from: the Host of the request, or the page's public address behind a proxy."""

from __future__ import annotations

from portal.csrf import same_origin

PUBLIC = "https://nianbao.county.gov.cn"


def test_behind_a_proxy_the_public_address_is_ours() -> None:
    # nginx passes its upstream as Host; the browser names the public address
    assert same_origin(PUBLIC, None, "127.0.0.1:8765", PUBLIC)
    assert same_origin(None, f"{PUBLIC}/u/abc", "127.0.0.1:8765", PUBLIC)


def test_another_site_is_refused_whatever_the_proxy() -> None:
    assert not same_origin("https://evil.example.com", None, "127.0.0.1:8765", PUBLIC)
    assert not same_origin(None, "https://evil.example.com/x", "nianbao.county.gov.cn", PUBLIC)
    assert not same_origin("null", None, "127.0.0.1:8765", PUBLIC)


def test_direct_access_is_judged_by_the_host() -> None:
    assert same_origin("http://127.0.0.1:8765", None, "127.0.0.1:8765", "")
    assert not same_origin("http://127.0.0.1:9999", None, "127.0.0.1:8765", "")
