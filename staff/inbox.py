"""The inbox: complaints by priority, then age, with filters (statistics: staff/stats.py)."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from bot.app import services
from dialogs import options as opt
from dialogs.messages import LANGUAGE_NAMES, LANGUAGES
from dialogs.municipalities import MUNICIPALITIES
from staff.i18n import (
    CHANNEL_NAMES,
    STATUS_LABELS,
    STATUSES,
    choice_label,
    label,
    municipality_name,
    pgettext,
)
from staff.queries import PRIORITIES, InboxFilter, inbox_page
from staff.roles import CASE_ROLES, roles_required, signed_in

bp = Blueprint("desk", __name__, url_prefix="/desk", template_folder="templates")


def filter_options() -> dict[str, list[tuple[str, str]]]:
    """The choices of each inbox filter, labelled in the desk language."""
    yes, no = pgettext("choice", "Yes"), pgettext("choice", "No")
    municipalities = sorted(
        ((m.code, municipality_name(m.code)) for m in MUNICIPALITIES), key=lambda p: p[1]
    )
    return {
        "status": [(s, label(STATUS_LABELS, s)) for s in STATUSES],
        "priority": [(p, p) for p in PRIORITIES],
        "area": [(c.value, choice_label("area", c.value)) for c in opt.AREAS],
        "ground": [(c.value, choice_label("ground", c.value)) for c in opt.GROUNDS],
        "perpetrator": [(c.value, choice_label("perpetrator", c.value)) for c in opt.PERPETRATORS],
        "municipality": [*municipalities, ("outside", municipality_name("outside"))],
        "language": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "channel": list(CHANNEL_NAMES.items()),
        "legal": [("yes", yes), ("no", no)],
    }


@bp.get("/")
@roles_required(CASE_ROLES)
def inbox() -> ResponseReturnValue:
    """Complaints the user may see, most urgent first, then oldest; 50 a page."""
    user = signed_in()
    f = InboxFilter.from_args(request.args)
    cursor = request.args.get("after")
    with services().uow() as db:
        page = inbox_page(db, user, f, cursor)
    options = filter_options()
    # The rows show the same labels as the filters: one lookup per cell instead of a translation.
    labels = {name: dict(choices) for name, choices in options.items()}
    return render_template(
        "desk/inbox.html", page=page, f=f, cursor=cursor, options=options, labels=labels
    )

