"""One case: every answer, the description, the conversation, evidence, and the work on it."""

from __future__ import annotations

import mimetypes
from datetime import date, timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot import case_events, checkins, outreach
from bot.app import services
from bot.delivery import notify_outbox
from bot.i18n import KOSOVO_TIME
from bot.notify import change_complaint
from dialogs import options as opt
from staff import audit, followups
from staff.i18n import _, describe, gettext, text
from staff.queries import PRIORITIES, case_for
from staff.roles import CASE_ROLES, Role, roles_required, signed_in
from staff.security import FILE_SECURITY_POLICY
from storage.models import Attachment, Complaint, Message, utcnow
from storage.staff_models import CaseAssignment, CaseNote, CheckIn, Referral, StaffUser

bp = Blueprint("desk_case", __name__, url_prefix="/desk", template_folder="templates")

NEXT_STATUSES: dict[str, tuple[str, ...]] = {
    "new": ("in_review", "referred", "legal_support", "closed"),
    "in_review": ("referred", "legal_support", "resolved", "closed"),
    "referred": ("in_review", "legal_support", "resolved", "closed"),
    "legal_support": ("in_review", "referred", "resolved", "closed"),
    "resolved": ("in_review", "closed"),
    "closed": ("in_review",),
    "withdrawn": (),
}
"""Where a case may go from each status (the work runs new → in_review → referred →
legal_support → resolved → closed; a case can be reopened; only the person withdraws)."""

INSTITUTIONS: tuple[opt.Text, ...] = (
    opt.Cx("institution", "Ombudsperson Institution"),
    opt.Cx("institution", "Kosovo Police"),
    opt.Cx("institution", "Municipal Office for Communities and Return"),
    opt.Cx("institution", "Municipal Human Rights Unit"),
    opt.Cx("institution", "Free Legal Aid Agency"),
    opt.Cx("institution", "Labour Inspectorate"),
    opt.Cx("institution", "Voice of Roma, Ashkali and Egyptians"),
)
"""Suggestions for the referral form (staff may type any institution)."""

CHECKIN_DAYS = (7, 14, 30)
MAX_NOTE = 5000
INLINE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/wav",
        "video/mp4",
    }
)
"""Evidence shown in the page; anything else (SVG, HTML, PDF...) is only downloaded."""


def _case_or_404(db: Session, reference: str) -> Complaint:
    complaint = case_for(db, signed_in(), reference)
    if complaint is None:
        abort(404)
    return complaint


def _back(complaint: Complaint, anchor: str = "") -> ResponseReturnValue:
    return redirect(url_for("desk_case.view", reference=complaint.reference) + anchor)


def conversation(db: Session, complaint: Complaint) -> list[Message]:
    """The messages of the case in order: the report's dialog, follow-ups and the replies.

    Those are the messages of the reporting contact, of every contact a follow-up or check-in
    went to (a phone number given for contact), and every message linked to the complaint.
    """
    contact_ids = {complaint.contact_id} if complaint.contact_id is not None else set()
    contact_ids |= {
        cid
        for cid in db.scalars(
            select(Message.contact_id).where(
                Message.complaint_id == complaint.id, Message.contact_id.is_not(None)
            )
        )
        if cid is not None
    }
    where = [Message.complaint_id == complaint.id]
    if contact_ids:
        where.append(Message.contact_id.in_(contact_ids))
    return list(
        db.scalars(
            select(Message)
            .where(or_(*where), Message.kind == "text")
            .order_by(Message.id)
            .limit(2000)
        )
    )


def _staff_names(db: Session) -> dict[int, str]:
    return {uid: name for uid, name in db.execute(select(StaffUser.id, StaffUser.name))}


def assignable_staff(db: Session, complaint: Complaint) -> list[StaffUser]:
    """Active staff who may see this case (legal staff only for legal-support cases)."""
    roles = [Role.ADMIN.value, Role.TRIAGE.value]
    if complaint.legal_support:
        roles.append(Role.LEGAL.value)
    return list(
        db.scalars(
            select(StaffUser)
            .where(StaffUser.active.is_(True), StaffUser.role.in_(roles))
            .order_by(StaffUser.name)
        )
    )


def _details(db: Session, complaint: Complaint) -> dict[str, Any]:
    settings = services().settings
    names = _staff_names(db)
    assignment = db.get(CaseAssignment, complaint.id)
    return {
        "complaint": complaint,
        "attachments": list(
            db.scalars(
                select(Attachment)
                .where(Attachment.complaint_id == complaint.id)
                .order_by(Attachment.id)
            )
        ),
        "messages": conversation(db, complaint),
        "notes": list(
            db.scalars(
                select(CaseNote).where(CaseNote.complaint_id == complaint.id).order_by(CaseNote.id)
            )
        ),
        "referrals": list(
            db.scalars(
                select(Referral).where(Referral.complaint_id == complaint.id).order_by(Referral.id)
            )
        ),
        "check_ins": list(
            db.scalars(
                select(CheckIn).where(CheckIn.complaint_id == complaint.id).order_by(CheckIn.id)
            )
        ),
        "names": names,
        "assignee_id": assignment.staff_user_id if assignment else None,
        "staff": assignable_staff(db, complaint),
        "next_statuses": NEXT_STATUSES.get(complaint.status, ()),
        "priorities": PRIORITIES,
        "unreachable": outreach.why_unreachable(
            db, complaint, sms_enabled=settings.twilio_enabled
        ),
        # What each ready message says, in the desk language (it is sent in the person's).
        "followup_previews": [
            (key, gettext(msgid) % {"reference": complaint.reference, "phone": "…"})
            for key, msgid in followups.TEMPLATES.items()
        ],
        "institutions": [text(i) for i in INSTITUTIONS],
        "checkin_days": CHECKIN_DAYS,
        "today": utcnow().astimezone(KOSOVO_TIME).date().isoformat(),
        "suggested_institutions": [
            name for name in (describe(i) for i in complaint.institutions or []) if name
        ],
        "inline_types": INLINE_TYPES,
    }


@bp.get("/case/<reference>")
@roles_required(CASE_ROLES)
def view(reference: str) -> ResponseReturnValue:
    """The case page; every view is written to the audit log."""
    user = signed_in()
    with services().uow() as db:
        complaint = _case_or_404(db, reference)
        audit.record(db, "case.view", user=user, complaint=complaint)
        details = _details(db, complaint)
    return render_template("desk/case.html", **details)


@bp.get("/case/<reference>/attachment/<int:attachment_id>")
@roles_required(CASE_ROLES)
def attachment(reference: str, attachment_id: int) -> ResponseReturnValue:
    """An evidence file, only from the storage folder, never run by the browser."""
    user = signed_in()
    storage = services().settings.storage_dir.resolve()
    with services().uow() as db:
        complaint = _case_or_404(db, reference)
        found = db.get(Attachment, attachment_id)
        if found is None or found.complaint_id != complaint.id or not found.path:
            abort(404)
        target = (storage / found.path).resolve()
        if not target.is_relative_to(storage) or not target.is_file():
            abort(404)
        audit.record(
            db, "attachment.view", user=user, complaint=complaint, detail={"id": found.id}
        )
        content_type = (found.content_type or "").split(";")[0].strip().lower()
    inline = content_type in INLINE_TYPES
    suffix = target.suffix or (mimetypes.guess_extension(content_type) or "")
    response = send_file(
        target,
        mimetype=content_type if inline else "application/octet-stream",
        as_attachment=not inline,
        download_name=f"{complaint.reference}-{attachment_id}{suffix}",
        conditional=False,
        etag=False,
        max_age=0,
    )
    response.headers["Content-Security-Policy"] = FILE_SECURITY_POLICY
    return response


@bp.post("/case/<reference>/status")
@roles_required(CASE_ROLES)
def change_status(reference: str) -> ResponseReturnValue:
    """Move the case to another status; emits complaint.updated."""
    user = signed_in()
    wanted = request.form.get("status", "")
    with services().uow() as db:
        complaint = _case_or_404(db, reference)
        old = complaint.status
        if wanted not in NEXT_STATUSES.get(old, ()):
            flash(_("This status change is not possible."), "error")
            return _back(complaint)
        _set_status(db, complaint, wanted)
        audit.record(
            db, "case.status", user=user, complaint=complaint, detail={"from": old, "to": wanted}
        )
    flash(_("The status is changed."), "info")
    return _back(complaint)


def _set_status(db: Session, complaint: Complaint, status: str) -> None:
    # bot.notify turns the change into a complaint.updated event in this transaction.
    change_complaint(db, complaint, status=status)


@bp.post("/case/<reference>/priority")
@roles_required(CASE_ROLES)
def change_priority(reference: str) -> ResponseReturnValue:
    """Set the priority by hand (kept among the reasons as set by staff)."""
    user = signed_in()
    wanted = request.form.get("priority", "")
    with services().uow() as db:
        complaint = _case_or_404(db, reference)
        old = complaint.priority
        if wanted not in PRIORITIES or wanted == old:
            flash(_("Choose another priority."), "error")
            return _back(complaint)
        change_complaint(db, complaint, priority=wanted)
        audit.record(
            db, "case.priority", user=user, complaint=complaint, detail={"from": old, "to": wanted}
        )
    flash(_("The priority is changed."), "info")
    return _back(complaint)


@bp.post("/case/<reference>/assign")
@roles_required(CASE_ROLES)
def assign(reference: str) -> ResponseReturnValue:
    """Give the case to a staff member, or to nobody."""
    user = signed_in()
    raw = request.form.get("staff_user_id", "")
    with services().uow() as db:
        complaint = _case_or_404(db, reference)
        current = db.get(CaseAssignment, complaint.id)
        if raw in ("", "none"):
            if current is not None:
                db.delete(current)
            assignee: int | None = None
        else:
            allowed = {u.id for u in assignable_staff(db, complaint)}
            if not raw.isdigit() or int(raw) not in allowed:
                flash(_("This person cannot work on this case."), "error")
                return _back(complaint)
            assignee = int(raw)
            if current is None:
                db.add(
                    CaseAssignment(
                        complaint_id=complaint.id, staff_user_id=assignee, assigned_by=user.id
                    )
                )
            else:
                current.staff_user_id = assignee
                current.assigned_by = user.id
                current.assigned_at = utcnow()
        complaint.updated_at = utcnow()
        case_events.complaint_updated(db, complaint, {"assignee": assignee})
        audit.record(db, "case.assign", user=user, complaint=complaint, detail={"to": assignee})
    flash(_("The case is assigned."), "info")
    return _back(complaint)


@bp.post("/case/<reference>/referral")
@roles_required(CASE_ROLES)
def refer(reference: str) -> ResponseReturnValue:
    """Record a referral to an institution; a new or in-review case becomes "referred"."""
    user = signed_in()
    institution = request.form.get("institution", "").strip()[:200]
    note = request.form.get("note", "").strip()[:MAX_NOTE]
    try:
        referred_on = date.fromisoformat(request.form.get("referred_on", ""))
    except ValueError:
        referred_on = None
    with services().uow() as db:
        complaint = _case_or_404(db, reference)
        if not institution or referred_on is None:
            flash(_("Give the institution and the date of the referral."), "error")
            return _back(complaint, "#referral")
        db.add(
            Referral(
                complaint_id=complaint.id,
                institution=institution,
                referred_on=referred_on,
                note=note or None,
                author_id=user.id,
            )
        )
        if complaint.status in ("new", "in_review"):
            _set_status(db, complaint, "referred")
        else:
            complaint.updated_at = utcnow()
            case_events.complaint_updated(db, complaint, {"referral": institution})
        audit.record(
            db, "case.referral", user=user, complaint=complaint, detail={"institution": institution}
        )
    flash(_("The referral is recorded."), "info")
    return _back(complaint)


@bp.post("/case/<reference>/note")
@roles_required(CASE_ROLES)
def add_note(reference: str) -> ResponseReturnValue:
    """Add an internal note (never shown to the complainant)."""
    user = signed_in()
    body = request.form.get("body", "").strip()
    with services().uow() as db:
        complaint = _case_or_404(db, reference)
        if not body or len(body) > MAX_NOTE:
            flash(_("Write a note of at most %(n)s characters.", n=MAX_NOTE), "error")
            return _back(complaint, "#notes")
        db.add(CaseNote(complaint_id=complaint.id, author_id=user.id, body=body))
        audit.record(db, "case.note", user=user, complaint=complaint)
    flash(_("The note is saved."), "info")
    return _back(complaint, "#notes")


def refusal_message(reason: str) -> str:
    """Why a message to the complainant was not sent, in the desk language."""
    messages = {
        outreach.NO_CONTACT: _("The person did not want to be contacted."),
        outreach.OPTED_OUT: _("The person has stopped messages from us."),
        outreach.SMS_OFF: _("SMS is not set up, so the phone number cannot be reached."),
        "phone_missing": _("Give the phone number to call back."),
        "empty": _("Write the message, or choose a ready one."),
        "too_long": _(
            "The message is too long (at most %(n)s characters).", n=followups.MAX_FREE_TEXT
        ),
    }
    return messages.get(reason, _("The message cannot be sent."))


@bp.post("/case/<reference>/message")
@roles_required(CASE_ROLES)
def send_message(reference: str) -> ResponseReturnValue:
    """Send a follow-up to the complainant on their channel, in their language, via the outbox."""
    user = signed_in()
    svc = services()
    follow_up = followups.FollowUp(
        template=request.form.get("template", "free"),
        phone=request.form.get("phone", ""),
        free_text=request.form.get("text", ""),
    )
    with svc.uow() as db:
        complaint = _case_or_404(db, reference)
        try:
            message = followups.send(
                db,
                svc.catalogs,
                complaint,
                follow_up,
                sms_enabled=svc.settings.twilio_enabled,
                now=utcnow(),
            )
        except followups.FollowUpRefused as refused:
            db.rollback()
            flash(refusal_message(refused.reason), "error")
            return _back(complaint, "#follow-up")
        audit.record(
            db,
            "message.sent",
            user=user,
            complaint=complaint,
            detail={"message_id": message.id, "template": follow_up.template},
        )
        if message.status == "queued":
            notify_outbox(db)
    flash(_("The message is waiting to be sent."), "info")
    return _back(complaint, "#conversation")


@bp.post("/case/<reference>/check-in")
@roles_required(CASE_ROLES)
def schedule_check_in(reference: str) -> ResponseReturnValue:
    """Schedule the question "Has the situation been resolved?" in some days."""
    user = signed_in()
    raw = request.form.get("days", "")
    svc = services()
    with svc.uow() as db:
        complaint = _case_or_404(db, reference)
        if not raw.isdigit() or int(raw) not in CHECKIN_DAYS:
            flash(_("Choose when to ask."), "error")
            return _back(complaint, "#check-ins")
        reason = outreach.why_unreachable(db, complaint, sms_enabled=svc.settings.twilio_enabled)
        if reason is not None:
            flash(refusal_message(reason), "error")
            return _back(complaint, "#check-ins")
        due = utcnow() + timedelta(days=int(raw))
        check_in = checkins.schedule(db, complaint, due, created_by=user.id)
        audit.record(
            db,
            "case.checkin",
            user=user,
            complaint=complaint,
            detail={"check_in": check_in.id, "days": int(raw)},
        )
    flash(_("The check-in is scheduled."), "info")
    return _back(complaint, "#check-ins")
