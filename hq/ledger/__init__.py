"""Settlement at HQ: a double-entry ledger per site, rates as data, statements and payouts (docs/settlement.md).

accounts  — account codes, balances derived from lines, the debits-equal-credits check
entries   — posting balanced entries (once per kind and source) and reversing them
rates     — share, base fee, minimum payout and payout fee, each in force from a date
events    — the money events: an order paid, a refund, the base fee, an adjustment, a payout
statements — per site and period: figures, order lines, CSV, the site's answer
payouts   — withdrawals the site asks for and HQ approves
"""
