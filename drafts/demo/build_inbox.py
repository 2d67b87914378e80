"""Build the demo inbox that ReplyHub shows a new user on first run.

The messages below are fictional support mail to Acme Cloud (艾克美云).
Each one is rendered with :mod:`email` so it is valid MIME, and the whole
set is written to ``inbox.mbox`` next to this script, replacing any
existing file. Output is byte-for-byte reproducible: dates, Message-IDs
and MIME boundaries are all fixed.

Usage::

    python3 drafts/demo/build_inbox.py
"""

from __future__ import annotations

import html
import inspect
import mailbox
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "inbox.mbox"
SUPPORT = "Acme Support <support@acme.example>"


@dataclass(frozen=True)
class Mail:
    """One demo message; ``in_reply_to`` is the 1-based number of its parent."""

    sender: str
    date: str
    subject: str
    body: str
    reply_to: str | None = None
    in_reply_to: int | None = None
    html: bool = False
    headers: tuple[tuple[str, str], ...] = ()


MAILS: tuple[Mail, ...] = (
    Mail(
        sender="张伟 <zhang.wei@huaxin-trade.example>",
        date="2026-11-02T09:14:00+08:00",
        subject="咨询艾克美客服云企业版报价",
        body="""
            您好，

            我们是华信贸易有限公司，客服团队约 50 人，正在评估
            艾克美客服云企业版，想了解以下几点：

            1. 50 个坐席按年付费的价格是多少？和月付差别大吗？
            2. 如果一次签三年合同，是否有额外折扣？
            3. 能否开具增值税专用发票？付款是否支持对公转账分期？

            我们计划在 2026年12月3日 前完成内部采购审批，
            麻烦尽快发一份正式报价单。

            谢谢！

            张伟
            采购经理 | 华信贸易有限公司
            电话：138-0013-8000
        """,
    ),
    Mail(
        sender="Mark Donnelly <mark.donnelly@brightpath-logistics.example>",
        date="2026-11-02T09:40:00-05:00",
        subject="TLS handshake failures after upgrading Acme Mail Gateway to 4.3.0",
        body="""
            Hi support,

            Since we upgraded Acme Mail Gateway from 4.2.1 to 4.3.0 on Saturday
            night (October 31), roughly 15% of outbound mail to some partners is
            being deferred. The gateway log shows:

              2026-11-02 07:58:13 AMG-5021 TLS handshake failed:
                peer=mx2.partner-freight.example (no shared cipher)
              2026-11-02 07:58:13 queue id 8F3C2A1 deferred, retry in 900s

            Nothing changed on our side apart from the upgrade. Did 4.3.0 drop
            some TLS 1.2 ciphers from the default policy? Is there a supported
            way to re-enable them, or should we roll back to 4.2.1?

            Appliance serial: AMG-A200-0098812, licence valid until 2027-06-30.

            Thanks,
            Mark Donnelly
            IT Operations Lead, BrightPath Logistics
            +1 617 555 0147
        """,
    ),
    Mail(
        sender="李娜 <li.na@jinyu-ecommerce.example>",
        date="2026-11-03T10:05:00+08:00",
        subject="投诉：艾克美客服云昨晚宕机两个多小时",
        body="""
            你好，

            11月2日晚上 20:15 到 22:40，艾克美客服云完全无法登录，
            坐席端一直提示“服务暂不可用（503）”，期间有 300 多个
            客户咨询没能及时回复。现在正是双十一备战的关键时期，
            这种事故对我们影响非常大。

            更让人不满的是，故障期间状态页面一直显示“运行正常”，
            我们也没有收到任何短信或邮件通知。

            我们的合同（订单号 AC20261015-2290）约定了 99.9% 的
            月度可用性。请在三个工作日内给出书面故障说明，
            并告知按 SLA 如何赔偿。

            李娜
            客服总监 | 金羽电商
        """,
    ),
    Mail(
        sender="Oliver Grant <oliver.grant@northbridge-it.example>",
        date="2026-11-03T16:22:00+00:00",
        subject="Reseller partnership for Acme CRM and Acme Mail Gateway (UK & IE)",
        reply_to="Northbridge Partnerships <partnerships@northbridge-it.example>",
        body="""
            Hello Acme team,

            I run Northbridge IT Solutions, a managed service provider in
            Manchester looking after around 40 SMB clients across the UK and
            Ireland. Several of them have asked us about Acme CRM, and we
            already resell two email security products, so Acme Mail Gateway
            would be a natural fit.

            Could you send details of your partner programme? In particular:
            - reseller margins and any volume tiers
            - deal registration and how territory conflicts are handled
            - NFR licences for our own staff and demo environment

            Happy to set up a call. Replies to partnerships@northbridge-it.example
            reach the whole team.

            Best regards,
            Oliver Grant
            Managing Director, Northbridge IT Solutions
            01632 960 481
        """,
    ),
    Mail(
        sender="王芳 <wang.fang@chenguang-edu.example>",
        date="2026-11-04T09:30:00+08:00",
        subject="预约艾克美客服云产品演示",
        body="""
            您好，

            我们是晨光教育，最近在线课程的售后咨询量增长很快，
            想预约一次艾克美客服云的线上演示。

            可选时间：
            - 11月12日（周四）下午 14:00–15:00
            - 11月13日（周五）上午 10:00–11:00

            我们会有 3 人参加（客服主管、运营和我）。请问演示
            大概需要多长时间？过程中可以提问吗？

            王芳
            客户服务部经理 | 晨光教育科技有限公司
            电话：0571-8555-0192
        """,
    ),
    Mail(
        sender="Priya Raman <priya.raman@lumenhealth.example>",
        date="2026-11-04T14:10:00-08:00",
        subject="Acme Analytics licensing: named vs concurrent users, on-prem?",
        body="""
            Hi,

            We're evaluating Acme Analytics for about 60 analysts, but only
            15-20 would be logged in at the same time. A few licensing
            questions:

            1. Do you offer concurrent-user licences, or only named users?
            2. Is there a self-hosted edition? Our patient data can't leave
               our own data centre.
            3. Will you sign a Business Associate Agreement?

            If it's easier, a short call this week works too.

            Thanks,
            Priya Raman
            Director of Data Platforms, Lumen Health
        """,
    ),
    Mail(
        sender="陈磊 <chen.lei@hengtong-logistics.example>",
        date="2026-11-05T11:48:00+08:00",
        subject="Acme CRM 单点登录失败 ERR_SAML_403（工单号 #58213）",
        body="""
            你好，

            补充一下工单 #58213 的信息：

            11月4日下午我们更换了身份提供方（IdP）的签名证书，
            之后所有员工通过 SSO 登录 Acme CRM 都失败，报错：

              ERR_SAML_403: Assertion signature invalid

            环境信息：
            - Acme CRM 私有化部署，版本 5.8.2
            - IdP：自建 SAML 2.0 服务
            - 新证书 SHA-256 指纹以 7A:3F:9C 开头

            我们已在管理后台“安全设置 > SAML”上传了新证书，
            问题依旧。目前只有管理员能用本地账号登录，约 200 名
            销售无法使用系统，麻烦尽快协助排查。

            陈磊
            IT 部 | 恒通物流
            电话：021-6555-0178
        """,
    ),
    Mail(
        sender="Rachel Kim <rachel.kim@copperleaf-design.example>",
        date="2026-11-05T13:15:00-05:00",
        subject="Charged twice for November - invoice INV-2026-11-0387",
        reply_to="Copperleaf Accounts <accounts@copperleaf-design.example>",
        body="""
            Hello,

            Our card ending 4421 was charged $1,188.00 twice on November 1 for
            the same Acme CRM subscription (invoice INV-2026-11-0387). We only
            have one account and 12 seats.

            Please refund the duplicate charge and send a corrected invoice.
            This is the second billing mistake this year, so I'd also like to
            know what is being done to stop it happening again.

            Rachel Kim
            Operations Manager, Copperleaf Design
        """,
    ),
    Mail(
        sender="刘洋 <liu.yang@yunqi-soft.example>",
        date="2026-11-06T10:20:00+08:00",
        subject="云启ERP 与艾克美客服云 API 集成合作",
        body="""
            艾克美云 您好：

            我是云启软件的产品负责人刘洋。云启ERP 目前服务约
            1,200 家制造和零售企业，其中很多客户同时在用
            艾克美客服云，希望在工单里直接看到订单和物流状态。

            我们想和贵司做双向集成：
            1. 在工单侧边栏展示云启ERP 的订单信息；
            2. 在云启ERP 中一键创建客服工单。

            想了解贵司是否有技术合作伙伴计划？能否提供沙箱环境
            和开放 API 文档？集成完成后能否上架贵司应用市场，
            并做联合解决方案推广？

            方便的话可以约个时间电话沟通。

            刘洋
            产品总监 | 云启软件
            电话：010-6555-0123
        """,
    ),
    Mail(
        sender="Sophie Laurent <sophie.laurent@maisonverte.example>",
        date="2026-11-06T17:05:00+01:00",
        subject="Demo request: Acme CRM + Acme Analytics for our sales team",
        html=True,
        body="""
            Hello,

            We're a home-and-garden retailer with 18 stores and a 25-person B2B
            sales team. We'd like a live demo of Acme CRM together with Acme
            Analytics, mainly pipeline reporting and forecasting.

            Would either of these work?
            - Tuesday, November 17 at 15:00 CET
            - Wednesday, November 18 at 10:00 CET

            Our Head of Sales, Julien Moreau, will join as well.

            Kind regards,
            Sophie Laurent
            Sales Operations, Maison Verte
        """,
    ),
    Mail(
        sender="赵敏 <zhao.min@xinyue-hotel.example>",
        date="2026-11-07T21:36:00+08:00",
        subject="感谢周工周末帮忙处理工单 #57940",
        body="""
            你好，

            今天下午我们前台系统和艾克美客服云的对接突然中断，
            贵司的周工半小时内就响应了，远程定位到是回调地址的
            证书过期，很快就解决了（工单 #57940）。特此感谢！

            另外有个小建议：工单状态变化时能否增加短信提醒？
            周末大家不一定一直看邮件。

            赵敏
            信息技术部 | 心悦酒店集团
        """,
    ),
    Mail(
        sender="Liam O'Connor <liam.oconnor@kestrel-apps.example>",
        date="2026-11-09T08:02:00+11:00",
        subject="API v2 returns 429 on /v2/contacts/bulk well under the rate limit",
        body="""
            Hi team,

            We're getting HTTP 429 Too Many Requests from the Acme CRM REST API
            on POST /v2/contacts/bulk, even though we send at most 2 requests
            per second and our plan allows 20.

            Example response (request ID req_7f3a9c21e4):

              HTTP/1.1 429 Too Many Requests
              X-RateLimit-Limit: 1200
              X-RateLimit-Remaining: 0
              Retry-After: 3600

            It started on Friday, November 6 at around 14:00 AEDT. We use the
            official Python SDK, acme-crm-python 2.14.0, with the API key
            ending in 9d1e. Nothing changed in our code.

            A one-hour Retry-After blocks our nightly sync of about 80,000
            contacts. Could you check whether our account limit was changed,
            and whether bulk calls are now counted per record instead of per
            request?

            Cheers,
            Liam O'Connor
            Lead Developer, Kestrel Apps
            0491 570 156
        """,
    ),
    Mail(
        sender="孙丽 <sun.li@meijia-home.example>",
        date="2026-11-09T10:40:00+08:00",
        subject="艾克美客服云支持哪些接入渠道？",
        body="""
            您好，请问艾克美客服云能否把公众号、小程序和网页在线
            客服统一接入？智能质检是单独收费吗？另外我们要求客户
            数据存放在境内，贵司的服务器在哪里？

            孙丽 | 美家家居
        """,
    ),
    Mail(
        sender="Daniel Osei <daniel.osei@inboxly.example>",
        date="2026-11-09T15:30:00-05:00",
        subject="Application: Support Engineer (Job ID ACME-SE-2611)",
        body="""
            Hello,

            I'd like to apply for the Support Engineer role (Job ID
            ACME-SE-2611) on your careers page. I have four years of
            experience supporting SaaS email and CRM products, including two
            years on a Tier 2 team, and I speak English and French.

            My résumé is here: https://daniel-osei.example/cv.pdf

            I'm available for an interview any weekday after November 16.
            Apologies if this is the wrong inbox; please forward it to the
            hiring team if so.

            Best,
            Daniel Osei
            +1 312 555 0119
        """,
    ),
    Mail(
        sender="周婷 <zhou.ting@lanhai-media.example>",
        date="2026-11-10T09:55:00+08:00",
        subject="投诉客服热线服务态度问题",
        body="""
            你好，

            11月9日下午 3 点左右，我拨打贵司 400 客服热线询问
            工单 #58302 的进度（续费后账号功能仍被限制），接线的
            客服语气非常不耐烦，说“这个不归我管”，没等我说完
            就挂断了电话。

            这个工单已经提交五天了，至今没有人联系我们。我们是
            连续付费三年的老客户，希望：
            1. 客服主管今天内回电说明情况；
            2. 尽快解除账号的功能限制。

            联系电话：186-0000-4512

            周婷
            行政主管 | 蓝海传媒
        """,
    ),
    Mail(
        sender="王芳 <wang.fang@chenguang-edu.example>",
        date="2026-11-10T13:12:00+08:00",
        subject="回复：预约艾克美客服云产品演示",
        in_reply_to=5,
        body="""
            您好，

            跟进一下上周的演示预约，目前还没收到确认。我们更倾向
            11月12日（周四）下午 14:00 这个时段。

            另外 IT 负责人李强也想参加，一共 4 人。希望演示时能
            重点介绍工单自动分配和知识库。确认后请把会议链接
            发给我，谢谢！

            王芳
            晨光教育科技有限公司

            在 2026年11月4日 09:30，王芳 写道：
            > 您好，
            >
            > 我们是晨光教育，最近在线课程的售后咨询量增长很快，
            > 想预约一次艾克美客服云的线上演示。
            > ...
        """,
    ),
    Mail(
        sender="Ethan Brooks <ethan.brooks@sierrabyte.example>",
        date="2026-11-11T07:45:00-08:00",
        subject="Pricing for Acme Mail Gateway, ~120 mailboxes",
        body="""
            Hi, what would Acme Mail Gateway cost for ~120 mailboxes, billed
            monthly? Any startup discount? A PDF quote would let us raise a PO.

            Ethan
        """,
    ),
    Mail(
        sender="吴刚 <wu.gang@dingsheng-mfg.example>",
        date="2026-11-12T09:20:00+08:00",
        subject="紧急：Acme Mail Gateway 升级 4.3.0 后邮件队列积压",
        body="""
            技术支持你好：

            我们昨晚 23:00 把 Acme Mail Gateway 从 4.2.3 升级到
            4.3.0，今天早上发现外发邮件大量积压，队列里已有约
            3,200 封，日志不断出现：

              AMG-7004: quota exceeded for relay pool "default-out"

            升级前没有改过任何中继配置，控制台显示中继池配额仍是
            每小时 5,000 封。现在业务部门的报价单和发货通知都发不
            出去，请尽快安排工程师远程支持。必要时能否直接回滚到
            4.2.3？

            设备序列号：AMG-A200-0102376
            联系电话：0755-2555-0166

            吴刚
            信息中心 | 鼎盛制造
        """,
    ),
    Mail(
        sender="Grace Mitchell <grace.mitchell@quillstack.example>",
        date="2026-11-12T16:00:00+00:00",
        subject="Co-marketing idea: joint webinar with Quillstack in January",
        html=True,
        body="""
            Hi Acme team,

            I head up marketing at Quillstack. Our knowledge-base tool has had
            a native Acme CRM integration since March, and about 300 of our
            customers use both products.

            We'd love to do some co-marketing together:
            - a joint webinar, "Faster answers with Acme CRM + Quillstack",
              on Wednesday, January 20, 2027
            - a short co-branded customer case study
            - cross-promotion in our newsletter (about 45,000 subscribers)

            Who would be the right person to talk to on your side? I can share
            our partner deck and audience numbers.

            Best,
            Grace Mitchell
            Head of Marketing, Quillstack
        """,
    ),
    Mail(
        sender="郑浩 <zheng.hao@ruifeng-scm.example>",
        date="2026-11-13T10:10:00+08:00",
        subject="订单 AC20261103-4471 硬件延迟交付",
        body="""
            艾克美云销售及客服：

            我司于 11月3日 下单采购 2 台 Acme Mail Gateway 一体机
            （型号 AMG-A200），订单号 AC20261103-4471，合同约定
            11月10日 前送达上海仓库，货款 ¥86,400 已于 11月4日
            全额支付。

            截至今天（11月13日）仍未发货，也没有物流单号。我们
            原定 11月16日 上线，整个项目都被耽误了。

            请今天之内回复确切的发货和到货日期。如果无法在
            11月18日 前到货，我们将按合同第 8 条要求支付违约金。

            郑浩
            项目经理 | 瑞丰供应链管理有限公司
            电话：021-6555-0190
        """,
    ),
    Mail(
        sender="Carlos Mendes <carlos.mendes@tidewater-insurance.example>",
        date="2026-11-13T14:30:00-05:00",
        subject="Demo request - Acme Analytics for our claims team",
        reply_to="Megan Alvarez <megan.alvarez@tidewater-insurance.example>",
        body="""
            Hi,

            We'd like to see a demo of Acme Analytics for our claims
            operations team (about 10 people). Would 12/15 at 11am ET or
            12/16 at 2pm ET work?

            My assistant Megan Alvarez will coordinate the calendar invite,
            so I've set replies to go to her.

            Thanks,
            Carlos Mendes
            VP Claims Operations, Tidewater Insurance
            +1 904 555 0132
        """,
    ),
    Mail(
        sender="何静 <he.jing@qingshan-pharma.example>",
        date="2026-11-14T11:05:00+08:00",
        subject="开票信息变更通知（合同号 AC-HT-2026-0318）",
        reply_to="青山医药财务部 <finance@qingshan-pharma.example>",
        body="""
            您好，

            我司已于 11月1日 搬迁，自 12月账单起请按以下信息开票：

            公司名称：青山医药科技有限公司（不变）
            纳税人识别号：不变
            新地址：上海市浦东新区示例路 88 号 6 楼
            电话：021-6555-0112

            合同号 AC-HT-2026-0318。纸质发票请寄到新地址，收件人
            何静。发票相关邮件请直接回复财务部邮箱。

            谢谢！
            何静
            财务部 | 青山医药
        """,
    ),
    Mail(
        sender="Ananya Iyer <ananya.iyer@pinecrest-edu.example>",
        date="2026-11-16T09:00:00+05:30",
        subject="Still locked out of Acme CRM - 2FA code rejected (Ticket #58417)",
        body="""
            Hello,

            I opened Ticket #58417 last Friday (November 13) and haven't heard
            back. I still can't log in to Acme CRM: after my password, every
            code from the Acme Authenticator app (Android, version 3.1.4) is
            rejected with "AUTH-2FA-017: code expired". My phone's clock is set
            automatically and I've reinstalled the app twice.

            I'm the only admin on our account (Pinecrest Academy, 35 users), so
            nobody else can reset it. Could someone please reset my 2FA today?

            Regards,
            Ananya Iyer
            IT Coordinator, Pinecrest Academy
        """,
    ),
    Mail(
        sender="Mark Donnelly <mark.donnelly@brightpath-logistics.example>",
        date="2026-11-16T14:02:00-05:00",
        subject="Automatic reply: Out of office",
        headers=(
            ("Auto-Submitted", "auto-replied"),
            ("X-Auto-Response-Suppress", "All"),
        ),
        body="""
            Thank you for your message. I'm out of the office until Monday,
            November 23, with limited access to email.

            For urgent mail gateway issues, please contact Jenna Price at
            jenna.price@brightpath-logistics.example or +1 617 555 0162.

            Mark Donnelly
            BrightPath Logistics
        """,
    ),
    Mail(
        sender="马俊 <ma.jun@shuxin-tech.example>",
        date="2026-11-17T10:30:00+08:00",
        subject="申请成为西南地区渠道代理",
        body="""
            艾克美云渠道部 您好：

            我们是成都蜀信科技有限公司，深耕西南地区政企信息化
            十余年，现有 150 多家政企客户，其中不少有客服系统和
            数据分析的采购需求。

            希望成为艾克美客服云和 Acme Analytics 在四川、重庆
            两地的授权代理商，想了解：
            1. 代理级别划分和对应折扣；
            2. 是否有区域保护政策；
            3. 售前技术支持和培训如何安排。

            我 11月24日 至 26日 在北京出差，如方便可以当面拜访
            贵司渠道负责人。

            马俊
            总经理 | 蜀信科技
            电话：028-8555-0147
        """,
    ),
    Mail(
        sender="杨帆 <yang.fan@zhixing-travel.example>",
        date="2026-11-18T09:45:00+08:00",
        subject="开放 API /api/v3/tickets 持续返回 500",
        body="""
            你好，

            从 11月17日 晚上 23:00 左右开始，我们调用艾克美客服云
            开放 API 创建工单（POST /api/v3/tickets）时，大约三分
            之一的请求返回 500：

              {"code": "INTERNAL_ERROR", "trace_id": "9c2e41b7f0a84d1e"}

            我们用的是官方 Java SDK acme-service-java 3.2.0，
            租户 ID zx-travel-0831。重试两三次一般能成功，但会
            产生重复工单。

            请问是服务端的问题吗？另外创建工单接口是否支持
            幂等键（Idempotency-Key），避免重试时重复创建？

            杨帆
            后端开发 | 智行旅游
        """,
    ),
    Mail(
        sender="CloudOps Weekly <news@some-vendor.example>",
        date="2026-11-18T10:00:00+00:00",
        subject="CloudOps Weekly #142: Zero-downtime database migrations",
        html=True,
        headers=(
            ("Precedence", "bulk"),
            ("List-Id", "<news.some-vendor.example>"),
            (
                "List-Unsubscribe",
                (
                    "<mailto:unsubscribe@some-vendor.example>,"
                    " <https://news.some-vendor.example/unsubscribe?id=acme-support>"
                ),
            ),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
        body="""
            CloudOps Weekly, issue #142 (November 18, 2026)

            This week:
            - Zero-downtime database migrations: a practical checklist
            - What changed in TLS defaults this year, and what it means for
              mail relays
            - Webinar: cost-aware autoscaling, Thursday, December 3, 17:00 UTC

            Read the full issue: https://news.some-vendor.example/issues/142

            You are receiving this because support@acme.example subscribed to
            CloudOps Weekly. Unsubscribe:
            https://news.some-vendor.example/unsubscribe?id=acme-support
        """,
    ),
    Mail(
        sender="Carlos Mendes <carlos.mendes@tidewater-insurance.example>",
        date="2026-11-19T10:05:00-05:00",
        subject="Re: Demo request - Acme Analytics for our claims team",
        reply_to="Megan Alvarez <megan.alvarez@tidewater-insurance.example>",
        in_reply_to=21,
        body="""
            Hi again,

            Quick update on the demo request below: 12/15 no longer works for
            us. Could we do 12/16 at 2pm ET, with 12/17 at 10am ET as a backup?

            If possible, please also show how Acme Analytics pulls data from
            Acme CRM. Our sales team uses it and we'd like one view across both.

            Thanks,
            Carlos

            On Fri, Nov 13, 2026 at 2:30 PM Carlos Mendes wrote:
            > Hi,
            >
            > We'd like to see a demo of Acme Analytics for our claims
            > operations team (about 10 people). Would 12/15 at 11am ET or
            > 12/16 at 2pm ET work?
            > ...
        """,
    ),
    Mail(
        sender="Tom Becker <tom.becker@harborview-dental.example>",
        date="2026-11-19T13:40:00-06:00",
        subject="Supplier onboarding form needed before December payment",
        body="""
            Hi there,

            Our accounts payable team is moving to a new system and needs every
            vendor to complete our supplier onboarding form (bank details, tax
            ID and a signed W-9) before we can pay the December invoice for our
            Acme CRM subscription.

            Could someone from your finance team fill in the form at
            https://vendors.harborview-dental.example/onboard?code=ACME-7731 by
            November 30? Let me know if you'd prefer a PDF version.

            Thanks,
            Tom Becker
            Office Manager, Harborview Dental Group
        """,
    ),
    Mail(
        sender="Greg Halvorsen <greg.halvorsen@ironwood-freight.example>",
        date="2026-11-20T08:50:00-05:00",
        subject="Acme Analytics down for 4 hours yesterday - SLA credit request",
        body="""
            Your Acme Analytics dashboards were unavailable yesterday, November
            19, from about 9:10am to 1:20pm ET. Every page returned "Error 502 -
            upstream unavailable", while your status page showed all systems
            operational the entire time.

            We run morning dispatch planning off those dashboards, so this cost
            us a full shift. Our enterprise agreement (contract ACME-ENT-2025-114)
            guarantees 99.95% uptime. Please confirm the service credit we are
            owed and send a written incident report by Wednesday, November 25.

            Greg Halvorsen
            Director of Operations, Ironwood Freight
        """,
    ),
)


def message_id(number: int) -> str:
    """Return the fixed Message-ID of message ``number`` (1-based)."""
    return f"<demo-{number:03d}@customer.example>"


def ancestors(number: int) -> list[str]:
    """Message-IDs of the thread above message ``number``, oldest first."""
    parent = MAILS[number - 1].in_reply_to
    if parent is None:
        return []
    return [*ancestors(parent), message_id(parent)]


def escape(text: str) -> str:
    """Escape ``text`` for use as HTML element content."""
    return html.escape(text, quote=False)


def to_html(text: str) -> str:
    """Render a plain-text body as simple HTML paragraphs and bullet lists."""
    blocks = []
    for paragraph in text.strip().split("\n\n"):
        lead, *items = re.split(r"^- ", paragraph, flags=re.MULTILINE)
        if lead.strip():
            lines = lead.strip().splitlines()
            blocks.append("<p>" + "<br>\n".join(map(escape, lines)) + "</p>")
        if items:
            entries = (escape(" ".join(item.split())) for item in items)
            blocks.append("<ul>" + "".join(f"<li>{e}</li>" for e in entries) + "</ul>")
    return "\n".join(blocks)


def render(number: int, mail: Mail) -> EmailMessage:
    """Build message ``number`` with its mbox envelope line set."""
    msg = EmailMessage(policy=default)
    msg["From"] = mail.sender
    if mail.reply_to:
        msg["Reply-To"] = mail.reply_to
    msg["To"] = SUPPORT
    msg["Subject"] = mail.subject
    sent = datetime.fromisoformat(mail.date)
    msg["Date"] = sent
    msg["Message-ID"] = message_id(number)
    if thread := ancestors(number):
        msg["In-Reply-To"] = thread[-1]
        msg["References"] = " ".join(thread)
    for name, value in mail.headers:
        msg[name] = value

    text = inspect.cleandoc(mail.body) + "\n"
    msg.set_content(text)
    if mail.html:
        page = f"<html><body>\n{to_html(text)}\n</body></html>\n"
        msg.add_alternative(page, subtype="html")
        msg.set_boundary(f"=_demo-{number:03d}_alt")

    envelope = time.asctime(sent.astimezone(UTC).timetuple())
    msg.set_unixfrom(f"From {msg['From'].addresses[0].addr_spec} {envelope}")
    return msg


def main() -> None:
    """Write every demo message to ``inbox.mbox``, replacing the old file."""
    OUTPUT.unlink(missing_ok=True)
    box = mailbox.mbox(OUTPUT)
    try:
        for number, mail in enumerate(MAILS, start=1):
            # Serialise here: mailbox's own generator would not fold headers.
            box.add(render(number, mail).as_bytes(unixfrom=True))
        box.flush()
    finally:
        box.close()
    print(f"wrote {len(MAILS)} messages to {OUTPUT}")


if __name__ == "__main__":
    main()
