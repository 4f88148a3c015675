"""Unified payment (统一支付): HQ is the merchant of record.

`contract` is what a gateway plugin implements, `epay` the 易支付 protocol,
`alipay` Alipay's Open Platform (RSA2), `wechat` WeChat Pay API v3 Native,
`config` keeps gateway credentials sealed at HQ, `flow` turns approved orders
into payments and verified notifications into fulfilment, `sandbox_epay` is the
gateway side of the epay protocol that tests and the demo pay through
(`sandbox_alipay`, `sandbox_wechat`: the same for the other two).
"""
