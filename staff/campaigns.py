"""Awareness campaigns (admins): create and edit, Telegram deep link, printable poster, figures."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.app import services
from staff import audit
from staff.i18n import _
from staff.poster import poster_texts, render_poster, telegram_deep_link
from staff.roles import ADMIN_ROLES, roles_required, signed_in
from storage.models import Campaign, Complaint, Contact, Conversation

bp = Blueprint(
    "desk_campaigns", __name__, url_prefix="/desk/campaigns", template_folder="templates"
)

CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A campaign code: what Telegram's ``/start <code>`` accepts (see bot/channels/telegram.py)."""
KEYWORD = re.compile(r"[A-Za-z0-9]{2,32}")
"""An SMS keyword: one word, letters and digits (matched case-insensitively)."""
NAME_MAX = 200


@dataclass
class CampaignForm:
    """The submitted campaign fields, cleaned, and what is wrong with them."""

    name: str = ""
    code: str = ""
    sms_keyword: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls) -> CampaignForm:
        """The form's fields, stripped; the keyword in capitals."""
        return cls(
            name=request.form.get("name", "").strip(),
            code=request.form.get("code", "").strip(),
            sms_keyword=request.form.get("sms_keyword", "").strip().upper(),
        )

    def validate(self, db: Session, campaign_id: int | None) -> bool:
        """Check every field (and that code and keyword are unused); whether all is well."""
        self.errors = {}
        if not self.name or len(self.name) > NAME_MAX:
            self.errors["name"] = _("Give the campaign a name (at most 200 characters).")
        if not CODE.fullmatch(self.code):
            self.errors["code"] = _(
                "The code is 1 to 64 letters (A–Z, a–z), digits, “_” or “-”, without spaces."
            )
        elif _taken(db, func.lower(Campaign.code), self.code.lower(), campaign_id):
            self.errors["code"] = _("Another campaign already has this code.")
        if self.sms_keyword:
            if not KEYWORD.fullmatch(self.sms_keyword):
                self.errors["sms_keyword"] = _(
                    "The SMS keyword is one word of 2 to 32 letters (A–Z) or digits."
                )
            elif _taken(db, func.upper(Campaign.sms_keyword), self.sms_keyword, campaign_id):
                self.errors["sms_keyword"] = _("Another campaign already has this SMS keyword.")
        return not self.errors


def _taken(db: Session, column: object, value: str, campaign_id: int | None) -> bool:
    """Whether another campaign has this value in ``column``."""
    query = select(Campaign.id).where(column == value)  # type: ignore[arg-type]
    if campaign_id is not None:
        query = query.where(Campaign.id != campaign_id)
    return db.scalar(query.limit(1)) is not None


@dataclass(frozen=True)
class Figures:
    """How a campaign did: conversations started and reports sent, by channel."""

    conversations: dict[str, int]
    reports: dict[str, int]

    @property
    def channels(self) -> list[str]:
        """Every channel with a conversation or a report."""
        return sorted(set(self.conversations) | set(self.reports))

    @property
    def total_conversations(self) -> int:
        """Conversations started from the campaign."""
        return sum(self.conversations.values())

    @property
    def total_reports(self) -> int:
        """Reports sent from the campaign."""
        return sum(self.reports.values())

    def rate(self, channel: str | None = None) -> float | None:
        """Reports per conversation started (all channels, or one); None without conversations."""
        if channel is None:
            started, sent = self.total_conversations, self.total_reports
        else:
            started = self.conversations.get(channel, 0)
            sent = self.reports.get(channel, 0)
        return min(1.0, sent / started) if started else None


def campaign_figures(db: Session, code: str) -> Figures:
    """Conversations started (test contacts excluded) and reports sent (not test), by channel."""
    conversations = db.execute(
        select(Contact.channel, func.count())
        .select_from(Conversation)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.campaign == code, Contact.is_test.is_(False))
        .group_by(Contact.channel)
    ).all()
    reports = db.execute(
        select(Complaint.channel, func.count())
        .where(Complaint.campaign == code, Complaint.is_test.is_(False))
        .group_by(Complaint.channel)
    ).all()
    return Figures(
        conversations={str(c): int(n) for c, n in conversations},
        reports={str(c): int(n) for c, n in reports},
    )


def _deep_link(code: str) -> str:
    return telegram_deep_link(services().settings.telegram_bot_username, code)


def _form_page(
    form: CampaignForm, campaign: Campaign | None, status: int = 200
) -> ResponseReturnValue:
    return render_template("campaigns/form.html", form=form, campaign=campaign), status


@bp.get("")
@roles_required(ADMIN_ROLES)
def index() -> ResponseReturnValue:
    """Every campaign with its deep link, keyword, poster and figures; the form for a new one."""
    with services().uow() as db:
        campaigns = list(db.scalars(select(Campaign).order_by(Campaign.created_at.desc())))
        rows = [(c, _deep_link(c.code), campaign_figures(db, c.code)) for c in campaigns]
    return render_template(
        "campaigns/index.html",
        rows=rows,
        form=CampaignForm(),
        bot_username=services().settings.telegram_bot_username,
        sms_number=services().settings.twilio_from_number,
    )


@bp.post("")
@roles_required(ADMIN_ROLES)
def create() -> ResponseReturnValue:
    """Create a campaign, or show the form again with what is wrong."""
    admin = signed_in()
    form = CampaignForm.from_request()
    with services().uow() as db:
        if not form.validate(db, None):
            return _form_page(form, None, 400)
        campaign = Campaign(code=form.code, name=form.name, sms_keyword=form.sms_keyword or None)
        db.add(campaign)
        db.flush()
        audit.record(db, "campaign.create", user=admin, detail={"campaign": campaign.code})
    flash(_("The campaign is saved."), "info")
    return redirect(url_for("desk_campaigns.index"))


@bp.get("/<int:campaign_id>")
@roles_required(ADMIN_ROLES)
def edit(campaign_id: int) -> ResponseReturnValue:
    """The form to change a campaign."""
    with services().uow() as db:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None:
            abort(404)
        form = CampaignForm(campaign.name, campaign.code, campaign.sms_keyword or "")
    return _form_page(form, campaign)


@bp.post("/<int:campaign_id>")
@roles_required(ADMIN_ROLES)
def update(campaign_id: int) -> ResponseReturnValue:
    """Change a campaign's name, code or keyword."""
    admin = signed_in()
    form = CampaignForm.from_request()
    with services().uow() as db:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None:
            abort(404)
        if not form.validate(db, campaign_id):
            return _form_page(form, campaign, 400)
        before = campaign.code
        campaign.name, campaign.code = form.name, form.code
        campaign.sms_keyword = form.sms_keyword or None
        audit.record(
            db, "campaign.update", user=admin, detail={"campaign": form.code, "was": before}
        )
    flash(_("The campaign is saved."), "info")
    return redirect(url_for("desk_campaigns.index"))


@bp.get("/<int:campaign_id>/poster.pdf")
@roles_required(ADMIN_ROLES)
def poster(campaign_id: int) -> ResponseReturnValue:
    """The campaign's printable A4 poster (PDF)."""
    svc = services()
    with svc.uow() as db:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None:
            abort(404)
        name, code, keyword = campaign.name, campaign.code, campaign.sms_keyword
    number = svc.settings.twilio_from_number
    pdf = render_poster(
        name=name,
        link=_deep_link(code),
        keyword=keyword,
        number=number,
        texts=poster_texts(svc.catalogs, keyword, number),
    )
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="raporto-poster-{code}.pdf"'},
    )
