"""Rendering prompts for SMS and Telegram."""

from __future__ import annotations

from bot.i18n import Catalogs
from bot.rendering import Renderer
from dialogs import options as opt
from dialogs.messages import Prompt


def test_a_prompt_without_parameters_is_rendered_once_per_language_and_channel() -> None:
    renderer = Renderer(Catalogs())
    area = Prompt("Where did it happen?", choices=opt.AREAS, step="area")
    first = renderer.render(area, "sq", "sms")
    assert (
        renderer.render(Prompt("Where did it happen?", choices=opt.AREAS, step="area"), "sq", "sms")
        is first
    )
    assert first.text.splitlines()[1].startswith("1 ")  # numbered lines on SMS
    telegram = renderer.render(area, "sq", "telegram")
    assert telegram is not first and telegram.reply_markup is not None
    assert renderer.render(area, "sr_Cyrl", "sms").text != first.text
    plain = renderer.render(area, "sq", "sms", plain_letters=True)
    assert plain is not first


def test_a_prompt_with_parameters_is_rendered_each_time() -> None:
    renderer = Renderer(Catalogs())
    one = Prompt("Report %(reference)s: %(status)s.", {"reference": "RAE-7K3Q9P", "status": "x"})
    two = Prompt("Report %(reference)s: %(status)s.", {"reference": "RAE-AAAAAA", "status": "x"})
    assert "RAE-7K3Q9P" in renderer.render(one, "en", "sms").text
    assert "RAE-AAAAAA" in renderer.render(two, "en", "sms").text
