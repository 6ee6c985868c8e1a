"""A campaign's A4 poster: a QR code to the Telegram deep link, the SMS keyword, three languages."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import qrcode
from reportlab.graphics import renderPDF
from reportlab.graphics.shapes import Drawing, Rect
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from bot.i18n import Catalogs

POSTER_LANGUAGES: tuple[str, ...] = ("sq", "rom", "sr_Latn")
"""Albanian, Romani and Serbian: the three texts printed on every poster."""

FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian/Ubuntu: apt package fonts-dejavu-core
    Path("/usr/share/fonts/dejavu"),  # Fedora, Alpine
    Path("/usr/share/fonts/TTF"),  # Arch
)
FONT, FONT_BOLD = "DejaVuSans", "DejaVuSans-Bold"


def telegram_deep_link(bot_username: str, code: str) -> str:
    """The link that opens the bot with ``/start <code>``; empty without a bot username."""
    name = bot_username.strip().lstrip("@")
    return f"https://t.me/{name}?start={code}" if name else ""


def qr_matrix(payload: str) -> list[list[bool]]:
    """The QR code of ``payload`` as rows of dark (True) and light modules, quiet zone included."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(payload)
    code.make(fit=True)
    return [[bool(cell) for cell in row] for row in code.get_matrix()]


def _register_fonts() -> None:
    """Register DejaVu Sans (ë ç č ć š ž đ and Cyrillic); Helvetica lacks č and ć."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            pdfmetrics.registerFont(TTFont(FONT, str(regular)))
            pdfmetrics.registerFont(TTFont(FONT_BOLD, str(bold)))
            return
    raise RuntimeError("posters need the DejaVu Sans font (Debian: apt install fonts-dejavu-core)")


@dataclass(frozen=True)
class PosterText:
    """The poster's text in one language."""

    language: str
    headline: str
    body: str
    sms: str


def poster_texts(catalogs: Catalogs, keyword: str | None, number: str) -> list[PosterText]:
    """The poster's sentences in Albanian, Romani and Serbian, from the catalogs."""
    texts = []
    for language in POSTER_LANGUAGES:
        t = catalogs.translations(language)
        sms = ""
        if keyword and number:
            sms = str(t.pgettext("poster", "Send %(keyword)s to %(number)s")) % {
                "keyword": keyword,
                "number": number,
            }
        texts.append(
            PosterText(
                language=language,
                headline=str(t.pgettext("poster", "Were you treated unfairly?")),
                body=str(
                    t.pgettext(
                        "poster",
                        "Tell us in confidence, by Telegram or SMS. It is free, and we help.",
                    )
                ),
                sms=str(sms),
            )
        )
    return texts


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Split ``text`` into lines no wider than ``width`` points."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and pdfmetrics.stringWidth(candidate, font, size) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def render_poster(
    *, name: str, link: str, keyword: str | None, number: str, texts: list[PosterText]
) -> bytes:
    """The poster as a one-page A4 PDF."""
    _register_fonts()
    buffer = io.BytesIO()
    page_w, page_h = A4
    margin = 18 * mm
    width = page_w - 2 * margin
    pdf = Canvas(buffer, pagesize=A4, pageCompression=0)
    pdf.setTitle(f"Raporto · {name}")
    pdf.setAuthor("Raporto")
    pdf.setSubject(link)
    y = page_h - margin
    pdf.setFont(FONT_BOLD, 30)
    pdf.drawString(margin, y - 24, "Raporto")
    y -= 44
    for text in texts:
        pdf.setFont(FONT_BOLD, 17)
        for line in _wrap(text.headline, FONT_BOLD, 17, width):
            pdf.drawString(margin, y - 17, line)
            y -= 22
        pdf.setFont(FONT, 12)
        for line in _wrap(text.body, FONT, 12, width):
            pdf.drawString(margin, y - 12, line)
            y -= 16
        if text.sms:
            pdf.setFont(FONT_BOLD, 13)
            for line in _wrap(text.sms, FONT_BOLD, 13, width):
                pdf.drawString(margin, y - 13, line)
                y -= 18
        y -= 12
    if link:
        matrix = qr_matrix(link)
        size = min(75 * mm, y - margin - 30)
        module = size / len(matrix)
        drawing = Drawing(size, size)
        for r, row in enumerate(matrix):
            for c, dark in enumerate(row):
                if dark:
                    drawing.add(
                        Rect(
                            c * module,
                            size - (r + 1) * module,
                            module,
                            module,
                            fillColor="black",
                            strokeColor=None,
                        )
                    )
        x = (page_w - size) / 2
        renderPDF.draw(drawing, pdf, x, y - size)
        pdf.linkURL(link, (x, y - size, x + size, y), relative=0)
        y -= size + 6
        pdf.setFont(FONT, 11)
        pdf.drawCentredString(page_w / 2, y - 11, f"Telegram: {link}")
        y -= 16
    if keyword and number:
        pdf.setFont(FONT_BOLD, 16)
        pdf.drawCentredString(page_w / 2, y - 18, f"SMS: {keyword} → {number}")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
