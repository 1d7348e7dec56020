"""Uploaded files on the server: the caps hold on the server, not only in the browser.

Streamlit 1.67 checks one limit when a file arrives (``PUT /_stcore/upload_file/<session>/
<file id>``): the server-wide ``server.maxUploadSize``. A widget's ``max_upload_size`` is
enforced by the browser alone, any file id is taken, and every file stays in memory until its
session ends. So, on this server:

- :func:`guard` (the router installs it on the first page view) wraps the server's upload
  manager: a file is taken only under an id the server handed to that session for an upload,
  a session holds at most :data:`SESSION_BYTES` (its older files give way), and all sessions
  together at most :data:`SERVER_BYTES`; anything else is refused with an HTTP error.
- :func:`within` is what a page calls with a widget's file before reading it: over the
  widget's cap, the file is dropped from the server's memory and the page says why.

``server.maxUploadSize`` itself (docker/start.sh, .streamlit/config.toml) is the largest file
any widget takes: :data:`MAX_UPLOAD_MB`.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Any

import streamlit as st

from cnnviz.fmt import nbytes

#: The server-wide upload limit (MB, as Streamlit counts them: MiB): the largest trained weights
#: the explorer takes, AlexNet's 233 MiB (ResNet-152: 230 MiB). VGG's 507-548 MiB are over it.
MAX_UPLOAD_MB = 240
#: What one session may hold at once: one weights file and one spec.
SESSION_BYTES = (MAX_UPLOAD_MB + 1) * 2**20
#: What all sessions together may hold.
SERVER_BYTES = 4 * MAX_UPLOAD_MB * 2**20
#: Upload ids a session may have asked for and not used yet (older ones expire).
PENDING_IDS = 64

_installed = threading.Lock()


def _refuse(status: int, detail: str):
    from starlette.exceptions import HTTPException

    return HTTPException(status_code=status, detail=detail)


def _manager():
    from streamlit.runtime import Runtime

    if not Runtime.exists():  # AppTest, bare mode: no server, nothing to guard
        return None
    return Runtime.instance().uploaded_file_mgr


def guard() -> bool:
    """Wrap the server's upload manager once per process (later calls do nothing); False
    where there is no server or the manager is not the in-memory one this knows."""
    mgr = _manager()
    if mgr is None or not hasattr(mgr, "file_storage"):
        return False
    with _installed:
        if getattr(mgr, "_cnnviz_guard", False):
            return True
        _wrap(mgr)
        mgr._cnnviz_guard = True
    return True


def _wrap(mgr: Any) -> None:
    issued: dict[str, collections.deque[str]] = {}
    lock = threading.Lock()
    get_upload_urls, add_file = mgr.get_upload_urls, mgr.add_file
    remove_session_files = mgr.remove_session_files

    def urls(session_id: str, file_names):
        infos = get_upload_urls(session_id, file_names)
        with lock:
            ids = issued.setdefault(session_id, collections.deque(maxlen=PENDING_IDS))
            ids.extend(i.file_id for i in infos)
        return infos

    def add(session_id: str, file) -> None:
        size = len(file.data)
        with lock:
            ids = issued.get(session_id)
            if ids is None or file.file_id not in ids:
                raise _refuse(400, "unknown upload id: ask the app for an upload URL first")
        if size > SESSION_BYTES:
            raise _refuse(413, "File too large")
        with getattr(mgr, "_lock", contextlib.nullcontext()):  # a snapshot, oldest first
            held = [
                (i, len(r.data))
                for i, r in mgr.file_storage.get(session_id, {}).items()
                if i != file.file_id
            ]
        used = sum(n for _, n in held)
        for old_id, n in held:  # the session's older files give way to the new one
            if used + size <= SESSION_BYTES:
                break
            mgr.remove_file(session_id, old_id)
            used -= n
        from streamlit.runtime.stats import CACHE_MEMORY_FAMILY

        stats = mgr.get_stats().get(CACHE_MEMORY_FAMILY, [])
        if sum(s.byte_length for s in stats) + size > SERVER_BYTES:
            raise _refuse(503, "the server holds too many uploads now; try again later")
        add_file(session_id, file)

    def forget(session_id: str) -> None:
        with lock:
            issued.pop(session_id, None)
        remove_session_files(session_id)

    mgr.get_upload_urls, mgr.add_file, mgr.remove_session_files = urls, add, forget


def within(upload, cap_bytes: int, what: str) -> bool:
    """True when ``upload`` (a widget's UploadedFile) is at most ``cap_bytes``; else the file
    is dropped from the server's memory, the page says why, and the answer is False. Reads
    only the size, never the bytes."""
    if upload is None or upload.size <= cap_bytes:
        return upload is not None
    from cnnviz_app.widgets import md_text

    st.error(
        f"{md_text(upload.name)} is {nbytes(upload.size)}; {what} take at most "
        f"{nbytes(cap_bytes)}. The file was not read and is dropped.",
        icon=":material/warning:",
    )
    drop(upload)
    return False


def drop(upload) -> None:
    """Free an uploaded file's bytes on the server now, not when the session ends."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    mgr, ctx = _manager(), get_script_run_ctx()
    if mgr is not None and ctx is not None:
        mgr.remove_file(ctx.session_id, upload.file_id)
