"""Rendering prompts for a channel: numbered lines for SMS, inline buttons for Telegram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.i18n import Catalogs
from bot.sms_encoding import fold_to_gsm7
from dialogs.messages import Prompt, Text

TELEGRAM_MAX_TEXT = 4096
CALLBACK_DATA_MAX_BYTES = 64
RENDERED_KEPT = 4_096
MENU_LANGUAGES = ("sq", "rom", "sr_Latn", "sr_Cyrl", "tr", "en")
"""The languages whose question heads the first-contact language menu (bs reads sr_Latn)."""


@dataclass(frozen=True)
class Rendered:
    """A message ready to send: its text and, on Telegram, its inline keyboard."""

    text: str
    reply_markup: dict[str, Any] | None = None


class Renderer:
    """Turns prompts into text in the person's language, shaped for each channel."""

    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs
        # Most prompts have no parameters: their text depends on nothing but the prompt, the
        # language and the channel, so each is rendered once (about 10 µs saved a reply).
        self._rendered: dict[tuple[Any, ...], Rendered] = {}

    def message_text(self, prompt: Prompt, language: str) -> str:
        """The prompt's sentence in a language, with its placeholders filled in."""
        if prompt.multilingual:
            heads: list[str] = []
            for lang in MENU_LANGUAGES:
                head = self.catalogs.gettext(lang, prompt.msgid)
                if head not in heads:
                    heads.append(head)
            return " / ".join(heads)
        if prompt.plural is not None:
            singular, plural, n = prompt.plural
            template = self.catalogs.ngettext(language, singular, plural, n)
        else:
            template = self.catalogs.gettext(language, prompt.msgid)
        if not prompt.params:
            return template
        params = {
            key: self.catalogs.text(language, value) if isinstance(value, Text) else value
            for key, value in prompt.params.items()
        }
        return template % params

    def labels(self, prompt: Prompt, language: str) -> list[str]:
        """The choice labels in a language, in order."""
        return [self.catalogs.text(language, c.label) for c in prompt.choices]

    def sms(self, prompt: Prompt, language: str, *, plain_letters: bool = False) -> Rendered:
        """Numbered lines under the question: ``1 Yes`` / ``2 No``."""
        lines = [self.message_text(prompt, language)]
        lines.extend(f"{i} {label}" for i, label in enumerate(self.labels(prompt, language), 1))
        text = "\n".join(lines)
        return Rendered(fold_to_gsm7(text) if plain_letters else text)

    def telegram(self, prompt: Prompt, language: str) -> Rendered:
        """The question with one inline button per choice, numbered so typing works too."""
        text = self.message_text(prompt, language)[:TELEGRAM_MAX_TEXT]
        if not prompt.choices or prompt.step is None:
            return Rendered(text)
        rows = []
        for i, (choice, label) in enumerate(
            zip(prompt.choices, self.labels(prompt, language), strict=True), 1
        ):
            data = f"{prompt.step}:{choice.value}"
            if len(data.encode("utf-8")) > CALLBACK_DATA_MAX_BYTES:
                raise ValueError(f"callback data over 64 bytes: {data}")
            rows.append([{"text": f"{i}. {label}", "callback_data": data}])
        if prompt.multi:
            text += "\n" + "\n".join(
                f"{i} {label}" for i, label in enumerate(self.labels(prompt, language), 1)
            )
            return Rendered(text)  # several picks are typed ("1 3"); one button = one pick
        return Rendered(text, {"inline_keyboard": rows})

    def render(
        self, prompt: Prompt, language: str, channel: str, *, plain_letters: bool = False
    ) -> Rendered:
        """The prompt rendered for a channel."""
        if prompt.params:
            return self._render(prompt, language, channel, plain_letters)
        key = (
            prompt.msgid,
            prompt.choices,
            prompt.step,
            prompt.multi,
            prompt.plural,
            prompt.multilingual,
            language,
            channel,
            plain_letters,
        )
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = self._render(prompt, language, channel, plain_letters)
            if len(self._rendered) < RENDERED_KEPT:  # prompts x languages x channels, bounded
                self._rendered[key] = rendered
        return rendered

    def _render(self, prompt: Prompt, language: str, channel: str, plain_letters: bool) -> Rendered:
        if channel == "telegram":
            return self.telegram(prompt, language)
        return self.sms(prompt, language, plain_letters=plain_letters)
