"""Attachments to concerns: screenshots and documents, checked and sealed (issue 5 §1, §6).

The type is read from the file's first bytes, not from its name or the browser's word
for it. For the kinds whose policies forbid copying or viewing images (youth-produced
sexual imagery, indecent images of children, illegal content: 003 §11.2, §11.4), an
image is refused with the reason, and the person is asked to record a description instead.
The file is sealed in DATA/attachments/ (``inst.attachments``); its row holds the id,
the type, the size and the sealed original name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from esafety import audit
from esafety.db import utcnow
from esafety.directory.service import require
from esafety.errors import InvalidInput, NotFound
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.model import Concern, ConcernAttachment
from esafety.safeguarding.reading import (
    actor_name,
    current_actor,
    find_concern,
    open_concern,
    require_grounds,
)
from esafety.sealing import SealedFiles
from esafety.security.roles import Permission

__all__ = [
    "ALLOWED_TYPES",
    "MAX_ATTACHMENT_BYTES",
    "AttachmentContent",
    "add_attachment",
    "read_attachment",
    "sniff",
]

#: 10 MB: a screenshot or a scanned letter, not a video.
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

#: What is accepted, by content type: whether it is an image.
ALLOWED_TYPES: dict[str, bool] = {
    "image/png": True,
    "image/jpeg": True,
    "image/gif": True,
    "image/webp": True,
    "image/heic": True,
    "application/pdf": False,
    "text/plain": False,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": False,
}


def sniff(content: bytes, filename: str) -> str | None:
    """The content type from the file's first bytes (None: not a type we accept)."""
    head = content[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and content[8:12] == b"WEBP":
        return "image/webp"
    if content[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1"):
        return "image/heic"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04") and filename.lower().endswith(".docx"):
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    if filename.lower().endswith(".txt"):
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


def add_attachment(
    session: Session, files: SealedFiles, concern_id: int, filename: str, content: bytes
) -> ConcernAttachment:
    """Attach a file to a concern the actor may read (the one who raised it too)."""
    require(session, Permission.VIEW_CONCERNS, "attach a file to a concern")
    concern = find_concern(session, concern_id)
    require_grounds(session, concern, act=False)
    name = (filename or "").strip().replace("/", "_").replace("\\", "_")[:200] or "attachment"
    if not content:
        raise InvalidInput(f"attachment {name!r} is empty: choose the file again")
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(
            f"attachment {name!r} is {len(content) / 1048576:.1f} MB: the largest is "
            f"{MAX_ATTACHMENT_BYTES // 1048576} MB; attach a smaller screenshot or a PDF"
        )
    content_type = sniff(content, name)
    if content_type is None:
        raise InvalidInput(
            f"attachment {name!r} is not a type esafety keeps: attach a screenshot (PNG, "
            "JPEG, GIF, WebP, HEIC), a PDF, a Word document (.docx) or a text file (.txt)"
        )
    info = kind_info(concern.current_kind)
    if ALLOWED_TYPES[content_type] and info.image_refusal is not None:
        raise InvalidInput(
            f"attachment {name!r} is an image, and images are not kept for a concern of "
            f"kind '{info.id}' ({info.title}): {info.image_refusal} "
            "Record a description of what was seen instead."
        )
    file_id = files.put(content)
    actor = current_actor(session)
    row = ConcernAttachment(
        school_id=concern.school_id,
        concern_id=concern.id,
        file_id=file_id,
        filename=name,
        content_type=content_type,
        size=len(content),
        added_by_id=actor.person_id if actor else None,
        added_by=actor_name(session),
        added_at=utcnow(),
    )
    concern.attachments.append(row)
    try:
        session.flush()
    except BaseException:
        files.delete(file_id)  # no sealed file without its row
        raise
    return row


@dataclass(frozen=True)
class AttachmentContent:
    attachment: ConcernAttachment
    content: bytes


def read_attachment(
    session: Session, files: SealedFiles, concern_id: int, attachment_id: int
) -> AttachmentContent:
    """An attachment's content, for one who may read its concern (the read is audited)."""
    opened = open_concern(session, concern_id)
    concern: Concern = opened.concern
    row = next((a for a in concern.attachments if a.id == attachment_id), None)
    if row is None:
        raise NotFound(f"no attachment #{attachment_id} on concern #{concern_id}")
    audit.record(session, "read", "concern_attachment", row.id)
    return AttachmentContent(row, files.read(row.file_id))
