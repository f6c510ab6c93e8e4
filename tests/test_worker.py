"""The Worker script (config/worker.py) in the real Workers runtime: workerd on loopback, over HTTP.

Every answer is compared with the Python builders' text: what the Worker serves is exactly what
config/mta_sts.py and config/autoconfig.py build.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from mailstack.config import MailSettings, load_settings
from mailstack.config.autoconfig import autodiscover_xml, mobileconfig, thunderbird_xml
from mailstack.config.mta_sts import policy_text
from mailstack.config.worker import COMPATIBILITY_DATE, MAIN_MODULE, documents, worker_script
from tests.workerd import Workerd

pytestmark = pytest.mark.integration

REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">\n'
    "  <Request>\n"
    "    <EMailAddress>{address}</EMailAddress>\n"
    "    <AcceptableResponseSchema>"
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
    "</AcceptableResponseSchema>\n"
    "  </Request>\n"
    "</Autodiscover>\n"
)


def settings() -> MailSettings:
    raw: dict[str, Any] = {
        "mailstack:hostname": "mail.example.org",
        "mailstack:dns": {"provider": "cloudflare"},
        "cloudflare:apiToken": "t",
        "mailstack:ports": {"submission": True},
        "mailstack:domains": {
            "example.org": {"backupMx": [{"host": "mx.backup.example.net", "priority": 20}]},
            "example.net": {"mtaSts": {"mode": "enforce"}},
        },
        "mailstack:accounts": {"me@example.org": {}},
    }
    raw = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in raw.items()}
    return load_settings(raw, secret_keys={"cloudflare:apiToken"}, stack="t")


SETTINGS = settings()


@pytest.fixture(scope="module")
def worker() -> Iterator[Workerd]:
    with Workerd(
        worker_script(SETTINGS, SETTINGS.domains), module=MAIN_MODULE, compatibility_date=COMPATIBILITY_DATE
    ) as w:
        yield w


def fetch(worker: Workerd, url: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(worker.request(url, **kwargs), timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()


@pytest.mark.parametrize("domain", ["example.org", "example.net"])
def test_mta_sts_policy_is_served_as_text_plain(worker: Workerd, domain: str) -> None:
    status, headers, body = fetch(worker, f"https://mta-sts.{domain}/.well-known/mta-sts.txt")
    assert (status, headers["content-type"]) == (200, "text/plain")
    assert body == policy_text(SETTINGS, SETTINGS.domain(domain))
    # Senders receive the CRLF lines unchanged (RFC 8461 §3.2).
    assert body.startswith("version: STSv1\r\nmode: ")


def test_thunderbird_document(worker: Workerd) -> None:
    d = SETTINGS.domain("example.org")
    url = "https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=me%40example.org"
    status, headers, body = fetch(worker, url)
    assert (status, headers["content-type"]) == (200, "application/xml")
    assert body == thunderbird_xml(SETTINGS, d)


def test_autodiscover_answers_outlooks_post_with_its_address(worker: Workerd) -> None:
    d = SETTINGS.domain("example.org")
    url = "https://autodiscover.example.org/Autodiscover/Autodiscover.xml"
    status, headers, body = fetch(worker, url, method="POST", data=REQUEST.format(address="Me@Example.ORG").encode())
    assert (status, headers["content-type"]) == (200, "application/xml")
    assert body == autodiscover_xml(SETTINGS, d, "Me@example.org")


@pytest.mark.parametrize(
    "address", ["me@example.net", "<script>@example.org", "me@example.org.evil.test", ""], ids=repr
)
def test_autodiscover_names_no_address_outside_the_domain(worker: Workerd, address: str) -> None:
    url = "https://autodiscover.example.org/autodiscover/autodiscover.xml"
    _, _, body = fetch(worker, url, method="POST", data=REQUEST.format(address=address).encode())
    assert body == autodiscover_xml(SETTINGS, SETTINGS.domain("example.org"), None)


def test_apple_profile_with_and_without_an_address(worker: Workerd) -> None:
    d = SETTINGS.domain("example.org")
    status, headers, body = fetch(
        worker, "https://autoconfig.example.org/mail/config.mobileconfig?email=me@example.org"
    )
    assert (status, headers["content-type"]) == (200, "application/x-apple-aspen-config")
    assert headers["content-disposition"] == 'attachment; filename="example.org.mobileconfig"'
    assert body == mobileconfig(SETTINGS, d, "me@example.org")
    assert fetch(worker, "https://autoconfig.example.org/mail/config.mobileconfig")[2] == mobileconfig(
        SETTINGS, d, None
    )


def test_every_document_is_served_and_nothing_else(worker: Workerd) -> None:
    docs = documents(SETTINGS)
    assert len(docs) == 8  # per domain: policy, Thunderbird, Apple, Outlook
    for doc in docs:
        assert fetch(worker, doc.url)[0] == 200, doc.url
        status, _, body = fetch(worker, doc.url, method="HEAD")
        assert (status, body) == (200, "")
    assert fetch(worker, "https://mta-sts.example.com/.well-known/mta-sts.txt")[:3:2] == (404, "not found\n")
    assert fetch(worker, "https://mta-sts.example.org/")[0] == 404
    status, headers, _ = fetch(worker, "https://mta-sts.example.org/.well-known/mta-sts.txt", method="POST", data=b"")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
