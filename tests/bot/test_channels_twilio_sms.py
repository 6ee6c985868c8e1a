"""Twilio webhooks read into inbound messages, signatures, and the client pointed elsewhere."""

from __future__ import annotations

import pytest
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator

from bot.channels.twilio_sms import (
    MAX_MEDIA,
    InvalidRequest,
    RedirectingHttpClient,
    make_client,
    parse_inbound,
    signature_valid,
)
from dialogs.messages import MediaRef
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioAPI

SID = "SM" + "a" * 32
URL = "https://raporto.example/webhooks/twilio/sms"


def form(**fields: str) -> dict[str, str]:
    """A minimal inbound SMS form."""
    base = {"MessageSid": SID, "From": "+38344123456", "Body": "hello", "NumMedia": "0"}
    base.update(fields)
    return base


def test_signature() -> None:
    params = form()
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(URL, params)
    assert signature_valid(DEFAULT_AUTH_TOKEN, URL, params, signature)
    assert not signature_valid(DEFAULT_AUTH_TOKEN, URL + "/", params, signature)
    assert not signature_valid(DEFAULT_AUTH_TOKEN, URL, dict(params, Body="x"), signature)
    assert not signature_valid(DEFAULT_AUTH_TOKEN, URL, params, None)
    assert not signature_valid(DEFAULT_AUTH_TOKEN, URL, params, "")
    assert not signature_valid("", URL, params, signature)


def test_plain_sms() -> None:
    parsed = parse_inbound(form(Body="Përshëndetje"), {})
    assert parsed.inbound.channel == "sms"
    assert parsed.inbound.sender == "+38344123456"
    assert parsed.inbound.message_id == SID
    assert parsed.inbound.text == "Përshëndetje"
    assert parsed.inbound.media == () and parsed.inbound.campaign is None
    assert parsed.opt_out_type is None


def test_sms_sid_is_the_fallback_and_opt_out_type_is_kept() -> None:
    fields = form(OptOutType="STOP", SmsSid=SID)
    del fields["MessageSid"]
    parsed = parse_inbound(fields, {})
    assert parsed.inbound.message_id == SID
    assert parsed.opt_out_type == "STOP"


@pytest.mark.parametrize(
    ("body", "campaign"),
    [
        ("DIKH", "dikh_2026"),
        ("dikh hello", "dikh_2026"),
        ("Dikh\nhi", "dikh_2026"),
        ("hello dikh", None),
        ("DIKHO", None),
        ("", None),
    ],
)
def test_campaign_keyword_is_the_first_word(body: str, campaign: str | None) -> None:
    parsed = parse_inbound(form(Body=body), {"dikh": "dikh_2026"})
    assert parsed.inbound.campaign == campaign


def test_mms_media() -> None:
    fields = form(
        NumMedia="4",
        MediaUrl0="https://api.twilio.com/m/0",
        MediaContentType0="image/png",
        MediaUrl1="https://api.twilio.com/m/1",
        MediaContentType1="audio/amr",
        MediaUrl2="ftp://example.org/m/2",  # not http(s): skipped
        MediaContentType2="image/jpeg",
        MediaUrl3="https://api.twilio.com/m/3",
        MediaContentType3="video/3gpp",
    )
    parsed = parse_inbound(fields, {})
    assert parsed.inbound.media == (
        MediaRef("photo", "https://api.twilio.com/m/0", "image/png"),
        MediaRef("voice", "https://api.twilio.com/m/1", "audio/amr"),
        MediaRef("video", "https://api.twilio.com/m/3", "video/3gpp"),
    )


def test_media_count_is_capped() -> None:
    fields = form(NumMedia="50")
    for i in range(50):
        fields[f"MediaUrl{i}"] = f"https://api.twilio.com/m/{i}"
    assert len(parse_inbound(fields, {}).inbound.media) == MAX_MEDIA


@pytest.mark.parametrize(
    "change",
    [
        {"MessageSid": "SM123"},
        {"MessageSid": "MX" + "a" * 32},
        {"From": "hello"},
        {"From": ""},
        {"NumMedia": "two"},
    ],
)
def test_malformed_forms(change: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        parse_inbound(form(**change), {})


def test_make_client_sends_to_the_given_base_url() -> None:
    assert type(make_client("AC1", "t").http_client) is TwilioHttpClient
    with FakeTwilioAPI() as tw:
        client = make_client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, tw.base_url)
        assert isinstance(client.http_client, RedirectingHttpClient)
        try:
            created = client.messages.create(to="+38344123456", from_="+15005550006", body="x")
        finally:
            client.http_client.session.close()
        assert created.sid == tw.sent_messages()[0]["Sid"]
        assert tw.requests()[0].path == tw.messages_path
