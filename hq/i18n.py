"""The fleet page's text in English and zh-CN, through the shop's mechanism (kitcore.i18n).

The language is `?lang=` (remembered in a cookie), else the cookie, else HQ's `locale`
setting. Alert summaries and refusals from HQ's services stay in English: they are
stored or logged as written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable
from urllib.parse import urlencode

from kitcore.i18n import translator

if TYPE_CHECKING:
    from starlette.requests import Request

LOCALES = ("en", "zh-CN")
NAMES = {"en": "English", "zh-CN": "简体中文"}
COOKIE = "hq_lang"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "HQ fleet", "logout": "Log out", "never": "never", "yes": "yes", "no": "no",
        "login.title": "HQ fleet: log in", "login.heading": "Operator login", "login.token": "Operator token",
        "login.submit": "Log in", "login.hint": "Create a token with", "login.bad_token": "operator token not recognised",
        "card.sites": "Sites", "card.online": "Online", "card.orders_today": "Orders today",
        "card.reviews": "Awaiting review", "card.alerts": "Open alerts",
        "alerts.title": "Alerts", "alerts.problem": "Problem", "alerts.since": "Since", "alerts.last_seen": "Last seen",
        "grades.title": "Grades and ranking, {period}", "grades.back": "Fleet", "grades.tier": "Tier",
        "grades.grade": "Grade", "grades.score": "Score", "grades.growth": "Growth", "grades.orders": "Orders",
        "grades.repurchase": "Repurchase", "grades.trend": "Trend", "grades.raise": "Would raise it",
        "grades.suggestion": "Suggestion", "grades.none": "No licensed sites.",
        "grades.do_upgrade": "Upgrade to {tier}", "grades.do_warn": "Warn", "grades.do_suspend": "Suspend {days} days",
        "grades.formula": "Score: weighted mean of each metric's sub-score (0 at its worst value, 1 at its best); "
                          "grade A ≥ 80, B ≥ 60, C ≥ 40, else D by default. docs/partners.md has the formula.",
        "metric.gmv_cents": "GMV", "metric.growth": "growth", "metric.orders": "orders",
        "metric.repurchase_rate": "repurchase", "metric.uptime": "uptime", "metric.sync_health": "sync health",
        "metric.rejection_rate": "fewer rejections", "metric.review_rate": "fewer reviews",
        "metric.refund_rate": "fewer refunds", "nav.grades": "Grades",
        "stock.title": "Stock warnings", "stock.keys": "Keys available", "stock.threshold": "Threshold",
        "stock.state": "State", "stock.low": "low stock", "stock.sold_out": "sold out",
        "alerts.none": "No open alerts.", "alerts.opened": "Opened", "alerts.resolved": "Resolved",
        "alerts.open": "still open", "alerts.history": "Resolved alerts ({n} most recent)",
        "alerts.more": "{shown} of {total} open alerts shown.", "alerts.filter": "Show the sites with an alert",
        "sites.title": "Sites", "sites.matches": "{total} sites match · page {page} of {pages}",
        "sites.no_match": "No site matches these filters.", "sites.none": "No sites yet. Issue a licence with",
        "filter.q": "Site, licensee or domain (starts with)", "filter.any_state": "Any state",
        "filter.any_tier": "Any tier", "filter.any_version": "Any version", "filter.alert": "Alert",
        "filter.any_alert": "Alert or not", "filter.any_ring": "Any ring", "filter.size": "Sites per page",
        "filter.per_page": "{n} a page", "filter.apply": "Search", "filter.clear": "Clear",
        "state.active": "active", "state.suspended": "suspended", "state.revoked": "revoked", "state.expired": "expired",
        "alert.any": "Any open alert", "alert.silent": "Silent", "alert.db_unhealthy": "Database unhealthy",
        "alert.sync_stale": "Catalog sync stale", "alert.outbox_backlog": "Outbox backlog",
        "ring.none": "No ring", "ring.n": "Ring {n}",
        "col.site": "Site", "col.licensee": "Licensee", "col.licence": "Licence", "col.tier": "Tier",
        "col.expires": "Expires", "col.heartbeat": "Last heartbeat", "col.version": "Version", "col.ring": "Ring",
        "col.health": "Health", "col.orders_today": "Orders today", "col.reviews": "Reviews", "col.actions": "Actions",
        "act.upgrade": "Upgrade", "act.resume": "Resume", "act.suspend": "Suspend", "act.revoke": "Revoke",
        "act.support_bundle": "Support bundle", "act.reason": "reason",
        "flash.done": "{site}: {action} done",
        "bulk.with_selected": "With the selected sites:", "bulk.action": "Bulk action", "bulk.select": "Select",
        "bulk.suspend": "suspend", "bulk.resume": "resume", "bulk.revoke": "revoke", "bulk.sync": "sync now",
        "bulk.ring": "set ring", "bulk.ring_to": "move to {ring}", "bulk.reason": "Reason (suspend, revoke)",
        "bulk.go": "Apply…", "bulk.question": "{action}: {n} sites?", "bulk.confirm": "Yes, {action} {n} sites",
        "bulk.cancel": "Cancel", "bulk.which": "The {n} sites",
        "bulk.done": "{action}: {done} of {n} sites done", "bulk.failed": "{n} not done, e.g. {site}: {why}",
        "page.first": "First", "page.prev": "Previous", "page.next": "Next", "page.last": "Last",
        "page.of": "Page {page} of {pages}",
        "bundles.title": "Support bundles", "bundles.by": "Asked by", "bundles.asked": "Asked", "bundles.bundle": "Bundle",
        "bundles.download": "download ({size} bytes)", "bundles.waiting": "waiting for the site",
        "gateways.title": "Payment gateways", "gateways.gateway": "Gateway", "gateways.enabled": "Enabled",
        "gateways.updated": "Updated", "gateways.connection": "Connection", "gateways.test": "Test connection",
        "gateways.none": "No gateway: approved orders deliver at once (test mode).",
        "recon.title": "Reconciliation with the gateways", "recon.day": "Day (UTC)", "recon.result": "Result",
        "recon.gateway_paid": "Paid at the gateway", "recon.hq_paid": "Paid at HQ", "recon.differences": "Differences",
        "recon.status.matched": "matched", "recon.status.differences": "differences", "recon.status.failed": "failed",
        "recon.more": "and {n} more", "recon.none": "No day reconciled yet.",
        "refunds.title": "Refunds", "refunds.order": "HQ order", "refunds.reason": "Reason", "refunds.site": "Site",
        "refunds.submit": "Refund through the gateway", "refunds.none": "No refund yet.",
        "pay.title": "Payments", "pay.state": "State", "pay.count": "Orders", "pay.amount": "Amount",
        "pay.none": "No payment through a gateway yet.", "pay.differences": "Reconciliation differences",
        "reviews.title": "Review queue", "reviews.order": "Order", "reviews.sku": "SKU × qty", "reviews.amount": "Amount",
        "reviews.buyer": "Buyer", "reviews.reasons": "Reasons", "reviews.received": "Received", "reviews.decide": "Decide",
        "reviews.approve": "Approve", "reviews.reject": "Reject", "reviews.none": "Nothing waiting for review.",
        "site.back": "All sites", "site.domain": "Domain", "site.reason": "Reason", "site.until": "until {until}",
        "site.commands_applied": "Commands applied", "site.licences": "Licences", "site.jti": "Licence id",
        "site.categories": "Categories", "site.issued": "Issued", "site.revoked": "Revoked", "site.current": "current",
        "site.commands": "Commands", "site.command": "Command", "site.queued": "Queued", "site.outcome": "Outcome",
        "site.applied": "applied {at}", "site.pending": "not yet applied", "site.no_commands": "No commands sent.",
        "site.versions": "Versions", "site.first_seen": "First reported", "site.no_versions": "No version reported yet.",
        "rollout.nav": "Rollouts", "rollout.title": "Rollout", "rollout.none": "No rollout yet. Start one with",
        "rollout.version": "Version", "rollout.rings": "Rings", "rollout.state": "State",
        "rollout.current": "Ring under way", "rollout.soak": "Soak", "rollout.reason": "Why it stopped",
        "rollout.started": "Started", "rollout.detail": "Detail", "rollout.reported": "Reported",
        "rollout.s.running": "running", "rollout.s.halted": "halted", "rollout.s.done": "done",
        "rollout.s.waiting": "waiting", "rollout.s.sent": "sent", "rollout.s.upgraded": "upgraded",
        "rollout.s.failed": "failed", "rollout.seconds": "{n} s",
        "site.audit": "Operators' actions", "site.when": "When", "site.who": "Who", "site.what": "What",
        "badge.no_report": "no report yet", "badge.db_ok": "database ok", "badge.db": "database {state}",
        "badge.waiting": "{n} orders waiting", "badge.outbox_empty": "outbox empty", "badge.in_review": "{n} in review",
        "badge.items": "{n} items", "badge.no_hq": "cannot reach HQ",
    },
    "zh-CN": {
        "title": "总部分站管理", "logout": "退出登录", "never": "从未", "yes": "是", "no": "否",
        "login.title": "总部分站管理：登录", "login.heading": "操作员登录", "login.token": "操作员令牌",
        "login.submit": "登录", "login.hint": "创建令牌：", "login.bad_token": "操作员令牌无效",
        "card.sites": "分站", "card.online": "在线", "card.orders_today": "今日订单",
        "card.reviews": "待审核", "card.alerts": "未解决告警",
        "alerts.title": "告警", "alerts.problem": "问题", "alerts.since": "开始于", "alerts.last_seen": "最近出现",
        "grades.title": "分站评级与排名（{period}）", "grades.back": "返回总览", "grades.tier": "等级",
        "grades.grade": "评级", "grades.score": "得分", "grades.growth": "增长", "grades.orders": "订单",
        "grades.repurchase": "复购率", "grades.trend": "趋势", "grades.raise": "提升方向",
        "grades.suggestion": "建议", "grades.none": "没有已授权的分站。",
        "grades.do_upgrade": "升级到 {tier}", "grades.do_warn": "警告", "grades.do_suspend": "暂停 {days} 天",
        "grades.formula": "得分：各指标分项（最差值为 0，最佳值为 1）的加权平均；默认 A ≥ 80，B ≥ 60，C ≥ 40，其余为 D。"
                          "公式见 docs/partners.md。",
        "metric.gmv_cents": "交易额", "metric.growth": "增长", "metric.orders": "订单数",
        "metric.repurchase_rate": "复购", "metric.uptime": "在线率", "metric.sync_health": "同步健康",
        "metric.rejection_rate": "减少拒单", "metric.review_rate": "减少人工审核",
        "metric.refund_rate": "减少退款", "nav.grades": "评级",
        "stock.title": "库存预警", "stock.keys": "可用卡密", "stock.threshold": "阈值",
        "stock.state": "状态", "stock.low": "库存紧张", "stock.sold_out": "已售罄",
        "alerts.none": "没有未解决的告警。", "alerts.opened": "发生", "alerts.resolved": "解决",
        "alerts.open": "仍未解决", "alerts.history": "已解决的告警（最近 {n} 条）",
        "alerts.more": "显示 {total} 条未解决告警中的 {shown} 条。", "alerts.filter": "查看有告警的分站",
        "sites.title": "分站", "sites.matches": "共 {total} 个分站符合 · 第 {page}/{pages} 页",
        "sites.no_match": "没有符合筛选条件的分站。", "sites.none": "还没有分站。签发许可证：",
        "filter.q": "分站、授权方或域名（开头匹配）", "filter.any_state": "全部状态",
        "filter.any_tier": "全部等级", "filter.any_version": "全部版本", "filter.alert": "告警",
        "filter.any_alert": "不限告警", "filter.any_ring": "全部批次", "filter.size": "每页分站数",
        "filter.per_page": "每页 {n} 个", "filter.apply": "搜索", "filter.clear": "清除",
        "state.active": "正常", "state.suspended": "已暂停", "state.revoked": "已吊销", "state.expired": "已过期",
        "alert.any": "有未解决告警", "alert.silent": "失联", "alert.db_unhealthy": "数据库异常",
        "alert.sync_stale": "商品同步过期", "alert.outbox_backlog": "订单积压",
        "ring.none": "未分批", "ring.n": "第 {n} 批",
        "col.site": "分站", "col.licensee": "授权方", "col.licence": "许可证", "col.tier": "等级",
        "col.expires": "到期", "col.heartbeat": "最近心跳", "col.version": "版本", "col.ring": "批次",
        "col.health": "健康", "col.orders_today": "今日订单", "col.reviews": "待审", "col.actions": "操作",
        "act.upgrade": "升级", "act.resume": "恢复", "act.suspend": "暂停", "act.revoke": "吊销",
        "act.support_bundle": "诊断包", "act.reason": "原因",
        "flash.done": "{site}：{action} 已完成",
        "bulk.with_selected": "对所选分站：", "bulk.action": "批量操作", "bulk.select": "选择",
        "bulk.suspend": "暂停", "bulk.resume": "恢复", "bulk.revoke": "吊销", "bulk.sync": "立即同步",
        "bulk.ring": "设置批次", "bulk.ring_to": "移到{ring}", "bulk.reason": "原因（暂停、吊销）",
        "bulk.go": "执行…", "bulk.question": "{action}：共 {n} 个分站？", "bulk.confirm": "确认{action} {n} 个分站",
        "bulk.cancel": "取消", "bulk.which": "这 {n} 个分站",
        "bulk.done": "{action}：{n} 个分站中 {done} 个已完成", "bulk.failed": "{n} 个未完成，例如 {site}：{why}",
        "page.first": "首页", "page.prev": "上一页", "page.next": "下一页", "page.last": "末页",
        "page.of": "第 {page}/{pages} 页",
        "bundles.title": "诊断包", "bundles.by": "请求人", "bundles.asked": "请求时间", "bundles.bundle": "诊断包",
        "bundles.download": "下载（{size} 字节）", "bundles.waiting": "等待分站上传",
        "gateways.title": "支付网关", "gateways.gateway": "网关", "gateways.enabled": "已启用",
        "gateways.updated": "更新", "gateways.connection": "连接", "gateways.test": "测试连接",
        "gateways.none": "未配置网关：通过的订单立即发货（测试模式）。",
        "recon.title": "与网关对账", "recon.day": "日期（UTC）", "recon.result": "结果",
        "recon.gateway_paid": "网关已收", "recon.hq_paid": "总部已收", "recon.differences": "差异",
        "recon.status.matched": "一致", "recon.status.differences": "有差异", "recon.status.failed": "失败",
        "recon.more": "另有 {n} 条", "recon.none": "尚无对账记录。",
        "refunds.title": "退款", "refunds.order": "总部订单", "refunds.reason": "原因", "refunds.site": "分站",
        "refunds.submit": "通过网关退款", "refunds.none": "尚无退款。",
        "pay.title": "支付", "pay.state": "状态", "pay.count": "订单数", "pay.amount": "金额",
        "pay.none": "尚无经网关的支付。", "pay.differences": "对账差异",
        "reviews.title": "审核队列", "reviews.order": "订单", "reviews.sku": "商品 × 数量", "reviews.amount": "金额",
        "reviews.buyer": "买家", "reviews.reasons": "原因", "reviews.received": "收到", "reviews.decide": "决定",
        "reviews.approve": "通过", "reviews.reject": "拒绝", "reviews.none": "没有待审核的订单。",
        "site.back": "全部分站", "site.domain": "域名", "site.reason": "原因", "site.until": "至 {until}",
        "site.commands_applied": "已执行指令", "site.licences": "许可证", "site.jti": "许可证编号",
        "site.categories": "类目", "site.issued": "签发", "site.revoked": "吊销", "site.current": "当前",
        "site.commands": "指令", "site.command": "指令", "site.queued": "下发", "site.outcome": "结果",
        "site.applied": "已执行 {at}", "site.pending": "尚未执行", "site.no_commands": "没有下发过指令。",
        "site.versions": "版本", "site.first_seen": "首次上报", "site.no_versions": "尚未上报版本。",
        "rollout.nav": "分批发布", "rollout.title": "分批发布", "rollout.none": "尚无发布。开始一次发布：",
        "rollout.version": "版本", "rollout.rings": "批次", "rollout.state": "状态",
        "rollout.current": "进行中的批次", "rollout.soak": "观察期", "rollout.reason": "停止原因",
        "rollout.started": "开始于", "rollout.detail": "详情", "rollout.reported": "上报于",
        "rollout.s.running": "进行中", "rollout.s.halted": "已停止", "rollout.s.done": "已完成",
        "rollout.s.waiting": "等待", "rollout.s.sent": "已下发", "rollout.s.upgraded": "已升级",
        "rollout.s.failed": "失败", "rollout.seconds": "{n} 秒",
        "site.audit": "操作记录", "site.when": "时间", "site.who": "操作员", "site.what": "操作",
        "badge.no_report": "尚无上报", "badge.db_ok": "数据库正常", "badge.db": "数据库 {state}",
        "badge.waiting": "{n} 个订单待转发", "badge.outbox_empty": "无积压", "badge.in_review": "{n} 个审核中",
        "badge.items": "{n} 个商品", "badge.no_hq": "无法连接总部",
    },
}


def t(locale: str) -> Callable[..., str]:
    return translator(MESSAGES, locale, "en")


def locale_of(request: "Request", default: str) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(COOKIE)
    return wanted if wanted in LOCALES else default


def check_lang(request: "Request") -> None:
    """`?lang=` names a language the page has, or the request is refused (400)."""
    from hq.fleet_query import InvalidQuery

    lang = request.query_params.get("lang")
    if lang is not None and lang not in LOCALES:
        raise InvalidQuery(f"lang: {lang[:20]!r} is not one of {', '.join(LOCALES)}")


def links(request: "Request") -> list[tuple[str, str, str]]:
    """(code, name, href) for each language: this page with its query, in that language."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("lang", "msg", "error")]
    return [(code, NAMES[code], request.url.path + "?" + urlencode([*kept, ("lang", code)])) for code in LOCALES]
