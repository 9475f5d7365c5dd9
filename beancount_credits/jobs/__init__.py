"""The jobs that run on a schedule or on demand and write to the ledger.

- :mod:`.close_day`: the daily job (expiries, end-of-day balances, seals);
- :mod:`.close_period`: carry the open grants forward and archive a period
  (:mod:`.carry_forward` computes what is carried);
- :mod:`.alerts`, :mod:`.notify`, :mod:`.channels`: which alerts are due, and
  their delivery by email, webhook and in-app, each recorded;
- :mod:`.topup`: auto top-up requests;
- :mod:`.records`: the delivery and top-up records these write.
"""
