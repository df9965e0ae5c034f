"""The upload page's HTTP side: routes, pages, CSRF, size limit, upload rate limit and security headers.

  GET  /u/{token}            the unit's page: name, year, status, deadline, upload form, its returns so far
  POST /u/{token}            upload a workbook; answered by a redirect to its result (POST-redirect-GET)
  GET  /u/{token}/result     the verdict: receipt, or the issue list (sheet, cell, rule, expected, found)
  GET  /u/{token}/workbook   the unit's issued workbook again
  GET  /u/{token}/report.(docx|pdf|html)   the unit's own annual report, made from its accepted return

Any wrong, altered or expired link, and any other address, gets the same plain 404 page.
"""

from __future__ import annotations

import hmac
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal import csrf
from portal.rate_limit import UploadLimiter
from portal.service import CHINA, Outcome, PortalService, UnitLink, china_date, china_time, result_signature
from portal.upload import BadForm, TooLarge, read_upload
from schemas.settings import Settings, get_settings

HERE = Path(__file__).parent
REPORT_TYPES = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "pdf": "application/pdf", "html": "text/html; charset=utf-8"}
CSS = (HERE / "static" / "portal.css").read_bytes()
# the unit's own report shown in the browser: its inline style and charts (data: images), nothing else; sandboxed,
# so that the unit's prose in it, escaped as it is, could not act as the portal even if it were not
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'none'; "
              "base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # the link is the unit's key: never sent to another site
    (b"cache-control", b"no-store"),  # pages carry the link and the unit's status
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    service = PortalService(settings)
    limiter = UploadLimiter(settings.portal_upload_limit, settings.portal_upload_window)
    pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
    app = FastAPI(title="nianbao portal", docs_url=None, redoc_url=None, openapi_url=None)

    def page(name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        html = pages.get_template(name).render(county_name=settings.county_name, **values)
        return HTMLResponse(html, status_code=status_code)

    def message(status_code: int, title: str, *lines: str, tone: str = "bad", back: str | None = None) -> HTMLResponse:
        return page("message.html.j2", status_code, title=title, lines=lines, tone=tone, back=back)

    def not_found() -> HTMLResponse:
        return message(404, "页面不存在", "您访问的页面不存在，或链接已失效。",
                       "请核对通知邮件中的报送链接是否完整；如仍无法打开，请联系县政府办公室（政务公开办）获取新的链接。",
                       tone="info")

    def forbidden() -> HTMLResponse:
        return message(403, "请求被拒绝", "该上传请求未通过安全校验（可能来自其他网站，或页面已过期）。",
                       "请重新打开本单位的报送链接，再从页面上上传文件。")

    def link_or_404(token: str) -> UnitLink:
        link = service.resolve(token)
        if link is None:
            raise HTTPException(404)
        return link

    def unit_values(link: UnitLink, nonce: str) -> dict[str, Any]:
        today = datetime.now(CHINA).date()
        days = (link.deadline - today).days
        days_note = f"还有 {days} 天" if days > 0 else ("今天截止" if days == 0 else f"已过截止日期 {-days} 天")
        base = f"/u/{link.token}"
        status = service.status(link, today)
        return {"unit": {"name": link.unit_name, "code": link.unit_code, "year": link.year},
                "status": status, "deadline": china_date(link.deadline),
                "days_note": "" if status.code == "accepted" else days_note,
                "post_url": base, "workbook_url": f"{base}/workbook",
                "report_urls": {fmt: f"{base}/report.{fmt}" for fmt in REPORT_TYPES} if status.has_accepted else {},
                "csrf": csrf.form_value(nonce, link.token, link.secret),
                "max_size": _size_text(settings.max_upload_bytes)}

    def with_cookie(response: Response, request: Request, nonce: str) -> Response:
        response.set_cookie(csrf.COOKIE, nonce, path="/u/", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    def nonce_of(request: Request) -> str:
        cookie = request.cookies.get(csrf.COOKIE)
        return cookie if csrf.valid_nonce(cookie) and cookie is not None else csrf.new_nonce()

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (404, 405):
            return not_found()  # one answer for every address that is not a unit's page
        return message(exc.status_code, "请求无法处理", "请返回上一页重试。")

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, _exc: RequestValidationError) -> Response:
        return not_found()  # a mangled result address is just another address that does not exist

    @app.get("/", response_class=HTMLResponse)
    async def home() -> Response:
        return message(200, "政府信息公开工作年度报告数据报送",
                       "请使用县政府办公室发给本单位的专属报送链接（见通知邮件）打开报送页面。", tone="info")

    @app.get("/portal.css")
    async def stylesheet() -> Response:
        return Response(CSS, media_type="text/css; charset=utf-8")

    @app.get("/u/{token}", response_class=HTMLResponse)
    async def unit_page(token: str, request: Request) -> Response:
        link = await run_in_threadpool(link_or_404, token)
        nonce = nonce_of(request)
        values = unit_values(link, nonce)
        values["history"] = await run_in_threadpool(service.history, link)
        return with_cookie(page("unit.html.j2", title=link.unit_name, form_title="上传填报工作簿", **values),
                           request, nonce)

    @app.post("/u/{token}")
    async def upload(token: str, request: Request) -> Response:
        link = await run_in_threadpool(link_or_404, token)
        back = f"/u/{link.token}"
        if not csrf.same_origin(request.headers.get("origin"), request.headers.get("referer"),
                                request.headers.get("host"), settings.portal_base_url):
            return forbidden()
        sender = request.client.host if request.client else ""
        wait = limiter.take(f"{link.campaign_id}:{link.unit_code}")
        if wait is not None:
            await run_in_threadpool(service.record_rate_limited, link, sender, settings.portal_upload_limit,
                                    settings.portal_upload_window)
            minutes = max(1, math.ceil(wait / 60))
            response = message(429, "上传过于频繁，请稍后再试",
                               f"本单位的报送链接在 {settings.portal_upload_window // 60} 分钟内最多上传 "
                               f"{settings.portal_upload_limit} 次，本次未接收。",
                               f"请约 {minutes} 分钟后再上传；如确需多次报送，请联系县政府办公室（政务公开办）。",
                               back=back)
            response.headers["retry-after"] = str(math.ceil(wait))
            response.headers["connection"] = "close"  # the body is never read
            return response
        try:
            form = await read_upload(request, settings.max_upload_bytes)
        except TooLarge as exc:
            await run_in_threadpool(service.record_refused, link, exc.size, sender)
            response = message(413, "文件过大，未予接收",
                               f"上传的文件超过 {_size_text(settings.max_upload_bytes)} 的上限，系统没有接收。",
                               "下发的工作簿填好后一般不超过 100KB，请勿在其中插入图片或其他内容；"
                               "请使用原工作簿重新填写后上传。", back=back)
            response.headers["connection"] = "close"  # the rest of the body is never read
            return response
        except BadForm:
            return message(400, "上传内容无法识别", "请通过报送页面上的表单选择文件后上传。", back=back)
        if not csrf.check(form.csrf, request.cookies.get(csrf.COOKIE), link.token, link.secret):
            return forbidden()
        if not form.file_name or not form.data:
            return message(400, "没有收到文件", "请先选择填好的工作簿，再点击“上传并校验”。", back=back)
        outcome: Outcome = await run_in_threadpool(service.take_upload, link, form.file_name, form.data, sender)
        if outcome.submission_id is None:  # nothing of its own to point at: answer in this response
            return result_page(link, request, outcome.answer, outcome.sha256)
        duplicate = outcome.answer.duplicate
        query = (f"s={outcome.submission_id}&d={int(duplicate)}"
                 f"&k={quote(result_signature(link, outcome.submission_id, duplicate))}")
        return RedirectResponse(f"{back}/result?{query}", status_code=303)

    @app.get("/u/{token}/result", response_class=HTMLResponse)
    async def result(token: str, request: Request, s: int = 0, d: int = 0, k: str = "") -> Response:
        link = await run_in_threadpool(link_or_404, token)
        if not hmac.compare_digest(k, result_signature(link, s, bool(d))):
            raise HTTPException(404)
        found = await run_in_threadpool(service.answer_of, link, s, bool(d))
        if found is None:
            raise HTTPException(404)
        return result_page(link, request, *found)

    def result_page(link: UnitLink, request: Request, answer: Any, sha256: str) -> Response:
        nonce = nonce_of(request)
        values = unit_values(link, nonce)
        errors = [i for i in answer.issues if i.get("severity") == "error"]
        warnings = [i for i in answer.issues if i.get("severity") != "error"]
        title = "已通过审核" if answer.accepted and not answer.duplicate else (
            "重复报送" if answer.duplicate else "未通过审核")
        return with_cookie(page("result.html.j2", title=title, answer=answer, errors=errors, warnings=warnings,
                                received=china_time(answer.received_at), receipt_no=sha256[:16].upper(),
                                form_title="重新上传修改后的工作簿" if not answer.accepted else "再次上传",
                                **values), request, nonce)

    @app.get("/u/{token}/workbook")
    async def workbook(token: str) -> Response:
        link = await run_in_threadpool(link_or_404, token)
        path = Path(link.workbook_path)
        if not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, filename=path.name,
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    @app.get("/u/{token}/report.{fmt}")
    async def unit_report(token: str, fmt: str) -> Response:
        link = await run_in_threadpool(link_or_404, token)
        if fmt not in REPORT_TYPES:
            raise HTTPException(404)
        path = await run_in_threadpool(service.unit_report, link, fmt)
        if path is None:
            accepted = (await run_in_threadpool(service.status, link)).has_accepted
            return message(503 if accepted else 404, "年度报告暂不能下载",
                           "本单位尚无审核通过的报送，或该格式暂时无法生成。",
                           "请先报送并通过审核；如已通过，请改为下载其他格式，或联系县政府办公室（政务公开办）。",
                           back=f"/u/{link.token}")
        if fmt == "html":  # opened in the browser, as a page would be; Word and PDF are saved
            return FileResponse(path, filename=path.name, media_type=REPORT_TYPES[fmt],
                                content_disposition_type="inline", headers={"content-security-policy": REPORT_CSP})
        return FileResponse(path, filename=path.name, media_type=REPORT_TYPES[fmt])

    app.add_middleware(SecurityHeaders)
    return app


class SecurityHeaders:
    """Adds the security headers to every response, and drops the server banner."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(event: Message) -> None:
            if event["type"] == "http.response.start":
                headers = [(k, v) for k, v in event.get("headers", []) if k.lower() != b"server"]
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                event = {**event, "headers": headers}
            await send(event)

        await self.app(scope, receive, send_with_headers)


def _size_text(size: int) -> str:
    return f"{size / 1_000_000:g} MB" if size >= 1_000_000 else f"{size / 1000:g} KB"
