"""mailstack.sigv4 against AWS's published Signature Version 4 test suite.

Vectors: awslabs/aws-c-auth tests/aws-signing-test-suite/v4/<name>/header-signed-request.txt and
context.json (credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1,
service `service`, 2015-08-30T12:36:00Z).
"""

from __future__ import annotations

import pytest

from mailstack import sigv4

EXAMPLE = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
SCOPE = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"


@pytest.mark.parametrize(
    ("name", "url", "signature"),
    [
        (
            "get-vanilla",
            "https://example.amazonaws.com/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "get-vanilla-query-order-key-case",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "get-vanilla-utf8-query",
            "https://example.amazonaws.com/?%E1%88%B4=bar",
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        ),
    ],
)
def test_aws_test_suite(name: str, url: str, signature: str) -> None:
    headers = sigv4.sign("GET", url, EXAMPLE, region="us-east-1", service="service", amz_date="20150830T123600Z")
    assert headers == {
        "Host": "example.amazonaws.com",
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": f"AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host;x-amz-date, Signature={signature}",
    }, name


def test_aws_test_suite_session_token() -> None:
    credentials = sigv4.Credentials(EXAMPLE.access_key_id, EXAMPLE.secret_access_key, TOKEN)
    headers = sigv4.sign(
        "GET",
        "https://example.amazonaws.com/",
        credentials,
        region="us-east-1",
        service="service",
        amz_date="20150830T123600Z",
    )
    assert headers["X-Amz-Security-Token"] == TOKEN
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    )


def test_secrets_stay_out_of_repr() -> None:
    credentials = sigv4.Credentials("AKID", "the-secret", "the-token")
    assert "the-secret" not in repr(credentials) and "the-token" not in repr(credentials)
